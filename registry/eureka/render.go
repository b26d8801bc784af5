package eureka

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

// The output shapes follow Eureka's own JSON (Jackson, with "$" and "@"
// keys) and XML (XStream) encodings, which Spring Cloud's and fargo's
// decoders read.

type portOut struct {
	Number  int    `json:"$" xml:",chardata"`
	Enabled string `json:"@enabled" xml:"enabled,attr"`
}

type dataCenterOut struct {
	Class string `json:"@class" xml:"class,attr"`
	Name  string `json:"name" xml:"name"`
}

type leaseOut struct {
	RenewalIntervalInSecs int   `json:"renewalIntervalInSecs" xml:"renewalIntervalInSecs"`
	DurationInSecs        int   `json:"durationInSecs" xml:"durationInSecs"`
	RegistrationTimestamp int64 `json:"registrationTimestamp" xml:"registrationTimestamp"`
	LastRenewalTimestamp  int64 `json:"lastRenewalTimestamp" xml:"lastRenewalTimestamp"`
	EvictionTimestamp     int64 `json:"evictionTimestamp" xml:"evictionTimestamp"`
	ServiceUpTimestamp    int64 `json:"serviceUpTimestamp" xml:"serviceUpTimestamp"`
}

// metaOut is a JSON object, or in XML one child element per key (keys that
// are not XML names are left out of the XML form).
type metaOut map[string]string

func (m metaOut) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if xmlName(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := e.EncodeElement(m[k], xml.StartElement{Name: xml.Name{Local: k}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// xmlName reports whether a registry metadata key (already [A-Za-z0-9._-])
// is also an XML element name.
func xmlName(k string) bool {
	if k == "" {
		return false
	}
	c := k[0]
	return (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') && !strings.HasPrefix(strings.ToLower(k), "xml")
}

type instanceOut struct {
	XMLName                       xml.Name      `json:"-" xml:"instance"`
	InstanceID                    string        `json:"instanceId" xml:"instanceId"`
	HostName                      string        `json:"hostName" xml:"hostName"`
	App                           string        `json:"app" xml:"app"`
	IPAddr                        string        `json:"ipAddr" xml:"ipAddr"`
	Status                        string        `json:"status" xml:"status"`
	OverriddenStatus              string        `json:"overriddenStatus" xml:"overriddenstatus"`
	Port                          portOut       `json:"port" xml:"port"`
	SecurePort                    portOut       `json:"securePort" xml:"securePort"`
	CountryID                     int           `json:"countryId" xml:"countryId"`
	DataCenterInfo                dataCenterOut `json:"dataCenterInfo" xml:"dataCenterInfo"`
	LeaseInfo                     leaseOut      `json:"leaseInfo" xml:"leaseInfo"`
	Metadata                      metaOut       `json:"metadata" xml:"metadata"`
	HomePageURL                   string        `json:"homePageUrl" xml:"homePageUrl"`
	StatusPageURL                 string        `json:"statusPageUrl" xml:"statusPageUrl"`
	HealthCheckURL                string        `json:"healthCheckUrl" xml:"healthCheckUrl"`
	VIPAddress                    string        `json:"vipAddress" xml:"vipAddress"`
	SecureVIPAddress              string        `json:"secureVipAddress" xml:"secureVipAddress"`
	IsCoordinatingDiscoveryServer string        `json:"isCoordinatingDiscoveryServer" xml:"isCoordinatingDiscoveryServer"`
	LastUpdatedTimestamp          string        `json:"lastUpdatedTimestamp" xml:"lastUpdatedTimestamp"`
	LastDirtyTimestamp            string        `json:"lastDirtyTimestamp" xml:"lastDirtyTimestamp"`
	ActionType                    string        `json:"actionType,omitempty" xml:"actionType,omitempty"`
}

type applicationOut struct {
	XMLName   xml.Name       `json:"-" xml:"application"`
	Name      string         `json:"name" xml:"name"`
	Instances []*instanceOut `json:"instance" xml:"instance"`
}

type applicationsOut struct {
	XMLName       xml.Name          `json:"-" xml:"applications"`
	VersionsDelta string            `json:"versions__delta" xml:"versions__delta"`
	AppsHashcode  string            `json:"apps__hashcode" xml:"apps__hashcode"`
	Applications  []*applicationOut `json:"application" xml:"application"`
}

// status is the Eureka status of a registry instance: up is UP; a
// suspect instance reports the status its client registered (STARTING,
// OUT_OF_SERVICE…) or DOWN.
func status(inst *registry.InstanceInfo) string {
	if inst.Health == bulwark.HealthUp {
		return "UP"
	}
	if s := inst.Metadata[metaStatus]; s != "" && inst.Health == bulwark.HealthSuspect {
		return s
	}
	return "DOWN"
}

// render turns a registry instance (registered through any API) into a
// Eureka instance.
func render(inst *registry.InstanceInfo, now time.Time) *instanceOut {
	md := inst.Metadata
	id := md[metaInstanceID]
	if id == "" {
		id = inst.ID
	}
	host, p, secure := splitAddress(inst.Address)
	out := &instanceOut{
		InstanceID: id, App: appName(inst.Service), Status: status(inst), OverriddenStatus: "UNKNOWN",
		HostName: or(md[metaHostName], host), IPAddr: or(md[metaIPAddr], host), CountryID: 1,
		DataCenterInfo:                dataCenterOut{Class: "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", Name: or(md[metaDataCenter], "MyOwn")},
		HomePageURL:                   md[metaHomePage],
		StatusPageURL:                 md[metaStatusPage],
		HealthCheckURL:                inst.HealthURL,
		VIPAddress:                    or(md[metaVIP], inst.Service),
		SecureVIPAddress:              or(md[metaSecureVIP], inst.Service),
		IsCoordinatingDiscoveryServer: "false",
		LastUpdatedTimestamp:          strconv.FormatInt(now.UnixMilli(), 10),
		LastDirtyTimestamp:            strconv.FormatInt(now.UnixMilli(), 10),
		Metadata:                      metaOut{},
	}
	pp, sp := port{}, port{}
	if v := md[metaPort]; v != "" {
		pp = parsePort(v)
	} else if !secure {
		pp = port{Number: p, Enabled: p > 0}
	}
	if v := md[metaSecurePort]; v != "" {
		sp = parsePort(v)
	} else if secure {
		sp = port{Number: p, Enabled: p > 0}
	}
	out.Port = portOut{Number: pp.Number, Enabled: strconv.FormatBool(pp.Enabled)}
	out.SecurePort = portOut{Number: sp.Number, Enabled: strconv.FormatBool(sp.Enabled)}
	renewal := 30
	if v, err := strconv.Atoi(md[metaRenewal]); err == nil && v > 0 {
		renewal = v
	}
	out.LeaseInfo = leaseOut{RenewalIntervalInSecs: renewal, DurationInSecs: int(time.Duration(inst.TTL) / time.Second)}
	for k, v := range md {
		if !strings.HasPrefix(k, "eureka.") && !strings.HasPrefix(k, "consul.") {
			out.Metadata[k] = v
		}
	}
	return out
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// splitAddress reads "http://host:port", "https://host:port" or
// "host:port".
func splitAddress(addr string) (host string, port int, secure bool) {
	if rest, ok := strings.CutPrefix(addr, "https://"); ok {
		addr, secure = rest, true
	} else if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	h, p, err := splitHostPort(addr)
	if err != nil {
		return addr, 0, secure
	}
	return h, p, secure
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, 0, fmt.Errorf("no port")
	}
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		return addr, 0, err
	}
	return strings.Trim(addr[:i], "[]"), p, nil
}

// group renders instances (sorted by service) as applications.
func group(insts []registry.InstanceInfo, now time.Time, action func(*registry.InstanceInfo) string) []*applicationOut {
	var apps []*applicationOut
	for i := range insts {
		inst := &insts[i]
		name := appName(inst.Service)
		if len(apps) == 0 || apps[len(apps)-1].Name != name {
			apps = append(apps, &applicationOut{Name: name})
		}
		o := render(inst, now)
		if action != nil {
			o.ActionType = action(inst)
		}
		a := apps[len(apps)-1]
		a.Instances = append(a.Instances, o)
	}
	if apps == nil {
		apps = []*applicationOut{}
	}
	return apps
}

// hashCode is Eureka's reconcile hash of a registry: "STATUS_count_" for
// each status in alphabetical order (Applications.getReconcileHashCode).
func hashCode(insts []registry.InstanceInfo) string {
	counts := map[string]int{}
	for i := range insts {
		counts[status(&insts[i])]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s_%d_", k, counts[k])
	}
	return b.String()
}
