package main

import (
	"html/template"
	"os"
)

var page = template.Must(template.New("r").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bulwark soak, seed {{.Seed}}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.bad{color:#a00;font-weight:bold}.ok{color:#060;font-weight:bold}</style></head><body>
<h1>Bulwark soak</h1>
<p>Seed <b>{{.Seed}}</b>, {{.Duration}} of faults over three registry nodes, three demo replicas, two gateways and a delivery-only JetStream member (separate processes).
Rerun with <code>bench/soak/run.sh --duration {{.Duration}} --seed {{.Seed}}</code>.</p>
<table>
<tr><th>accepted async writes</th><td>{{.Accepted}}</td></tr>
<tr><th>delivered exactly once by key</th><td>{{.DeliveredOnce}}</td></tr>
<tr><th>lost</th><td class="{{if .Lost}}bad{{else}}ok{{end}}">{{.Lost}}</td></tr>
<tr><th>duplicates at the backend</th><td>{{.BackendDups}}</td></tr>
<tr><th>async writes refused (503, retry)</th><td>{{.AsyncRefused}}</td></tr>
<tr><th>sync reads ok / failed</th><td>{{.SyncOK}} / {{.SyncFailed}} ({{printf "%.4f" .SyncSuccessRatio}})</td></tr>
<tr><th>wrong bodies</th><td class="{{if .WrongBodies}}bad{{else}}ok{{end}}">{{.WrongBodies}}</td></tr>
<tr><th>settle (last accepted write delivered after the faults)</th><td>{{.SettleMS}} ms</td></tr>
<tr><th>network cuts (nftables)</th><td>{{.NetworkCuts}}{{if .CutsIneffective}} — <span class="bad">{{.CutsIneffective}} victims still answered while cut</span>{{end}}</td></tr>
<tr><th>load average (start, end)</th><td>{{range .LoadAvg}}{{.}}; {{end}}</td></tr>
</table>
{{if .LostDetail}}<h2>Lost writes</h2>
<table><tr><th>key</th><th>accepted at ms</th><th>gateway (try)</th><th>in work stream / dead letters</th><th>status record</th><th>faults within 5 s</th></tr>
{{range .LostDetail}}<tr><td>{{.Key}}</td><td>{{.AcceptedAtMS}}</td><td>{{.Gateway}} ({{.Tries}})</td><td>{{.InWork}} / {{.InDead}}</td><td>{{.Status}}</td><td>{{range .FaultsNear}}{{.}}<br>{{end}}</td></tr>{{end}}
</table>{{end}}
<h2>Recovery by fault</h2>
<table><tr><th>kind/action</th><th>p50 ms</th><th>max ms</th></tr>
{{range $k, $v := .RecoveryP50MS}}<tr><td>{{$k}}</td><td>{{$v}}</td><td>{{index $.RecoveryMaxMS $k}}</td></tr>{{end}}</table>
<h2>Faults</h2>
<table><tr><th>at</th><th>victim</th><th>action</th><th>held ms</th><th>recovery ms</th></tr>
{{range .Faults}}<tr><td>{{.At}}</td><td>{{.Kind}} {{.Victim}}</td><td>{{.Action}}</td><td>{{.HeldMS}}</td><td>{{if .Recovered}}{{.RecoveryMS}}{{else}}<span class="bad">not recovered</span>{{end}}</td></tr>{{end}}
</table></body></html>
`))

func writeHTML(path string, r Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return page.Execute(f, r)
}
