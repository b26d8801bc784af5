package experiment

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestFaultWindows(t *testing.T) {
	t.Parallel()
	act := func(kind, subject string, from float64) ActionResult {
		return ActionResult{Name: kind + "@" + subject, Kind: kind, Subject: subject, Phase: "method", From: from, To: from + 0.01, OK: true}
	}
	failed := act("http", "POST http://a/fault", 1)
	failed.OK = false
	rollback := act("http", "POST http://a/fault", 9)
	rollback.Phase = "rollback"
	tests := []struct {
		name    string
		actions []ActionResult
		want    []FaultWindow
	}{
		{"toxic until its removal", []ActionResult{act("add_toxic", "web/lat", 1), act("remove_toxic", "web/lat", 4)},
			[]FaultWindow{{1, 4, "add_toxic@web/lat"}}},
		{"toxic never removed lasts to the end", []ActionResult{act("add_toxic", "web/lat", 1)},
			[]FaultWindow{{1, 10, "add_toxic@web/lat"}}},
		{"fault switch set then reset", []ActionResult{act("http", "POST http://a/fault", 1), act("http", "POST http://a/fault", 4), rollback},
			[]FaultWindow{{1, 4, "http@POST http://a/fault"}}},
		{"calls to different URLs are instants", []ActionResult{act("http", "POST http://a/kill", 1), act("http", "POST http://b/kill", 2)},
			[]FaultWindow{{1, 1.05, "http@POST http://a/kill"}, {2, 2.05, "http@POST http://b/kill"}}},
		{"stop then continue the same pid", []ActionResult{act("run", "kill -STOP 12", 1), act("run", "kill -CONT 12", 5)},
			[]FaultWindow{{1, 5, "run@kill -STOP 12"}}},
		{"kills of different pids are instants", []ActionResult{act("run", "kill -KILL 12", 1), act("run", "kill -KILL 13", 2)},
			[]FaultWindow{{1, 1.05, "run@kill -KILL 12"}, {2, 2.05, "run@kill -KILL 13"}}},
		{"failed actions and rollbacks are not faults", []ActionResult{failed, rollback}, []FaultWindow{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := faultWindows(tt.actions, 10); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestChartsScales(t *testing.T) {
	t.Parallel()
	res := &Result{Duration: 2.55, Hypothesis: HypothesisResult{SuccessRatio: 0.99},
		Timeline: []Bucket{
			{T: 0, Requests: 40, SuccessRatio: 1, P50Ms: 2, P99Ms: 5},
			{T: 1, Requests: 40, SuccessRatio: 1, P50Ms: 2, P99Ms: 5},
			{T: 2, Requests: 30, SuccessRatio: 1, P50Ms: 2, P99Ms: 5}, // in 0.55 s: 55 req/s
		}}
	tests := []struct {
		name      string
		duration  float64
		limit     float64
		points    int
		threshold bool
		note      bool
		rpsMax    float64
	}{
		{"limit far above the data is a note", 2.55, 1000, 3, false, true, 100},
		{"limit near the data is drawn", 2.55, 10, 3, true, false, 100},
		{"a sliver of a last bucket is not drawn", 2.1, 0, 2, false, false, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := *res
			r.Duration, r.Hypothesis.P99Ms = tt.duration, tt.limit
			cs := charts(&r)
			if len(cs) != 3 {
				t.Fatalf("%d charts, want 3", len(cs))
			}
			if n := len(strings.Fields(cs[0].Series[0].Points)); n != tt.points {
				t.Errorf("throughput has %d points, want %d", n, tt.points)
			}
			if cs[0].sc().yMax != tt.rpsMax {
				t.Errorf("throughput axis up to %v, want %v", cs[0].sc().yMax, tt.rpsMax)
			}
			lat := cs[2]
			if got := len(lat.Thresholds) == 1; got != tt.threshold {
				t.Errorf("latency threshold drawn %v, want %v (axis up to %v)", got, tt.threshold, lat.sc().yMax)
			}
			if got := lat.Note != ""; got != tt.note {
				t.Errorf("latency note %q, want one: %v", lat.Note, tt.note)
			}
			var b bytes.Buffer
			if err := WriteHTML(&b, &r); err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(b.String(), "<polyline"); got != 4 {
				t.Errorf("%d polylines in the HTML, want 4", got)
			}
		})
	}
}

func TestTickLabel(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		v    float64
		want string
	}{{0, "0"}, {0.25, "0.25"}, {7500, "7500"}, {10000, "10000"}, {1.25, "1.25"}, {0.125, "0.125"}} {
		if got := tickLabel(tt.v); got != tt.want {
			t.Errorf("tickLabel(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
