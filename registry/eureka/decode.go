package eureka

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

// Metadata keys this package keeps to render an instance back as its
// Eureka client registered it. User metadata keys never start with
// "eureka." (refused at registration).
const (
	metaInstanceID = "eureka.instanceId"
	metaHostName   = "eureka.hostName"
	metaIPAddr     = "eureka.ipAddr"
	metaVIP        = "eureka.vipAddress"
	metaSecureVIP  = "eureka.secureVipAddress"
	metaStatus     = "eureka.status"
	metaPort       = "eureka.port"
	metaSecurePort = "eureka.securePort"
	metaHomePage   = "eureka.homePageUrl"
	metaStatusPage = "eureka.statusPageUrl"
	metaDataCenter = "eureka.dataCenter"
	metaRenewal    = "eureka.renewalIntervalInSecs"
)

// maxBody bounds a registration body.
const maxBody = 64 << 10

// defaultLease is Eureka's default lease duration (LeaseInfo.DEFAULT_LEASE_DURATION).
const defaultLease = 90 * time.Second

var errBadRequest = fmt.Errorf("%w (eureka API)", registry.ErrInvalid)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// port is Eureka's {"$": 8080, "@enabled": "true"} in JSON (a bare
// number or string is accepted too) and <port enabled="true">8080</port>
// in XML.
type port struct {
	Number  int
	Enabled bool
}

func (p *port) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] != '{' {
		n, err := jsonInt(b)
		p.Number, p.Enabled = n, true
		return err
	}
	var aux struct {
		Number  json.RawMessage `json:"$"`
		Enabled json.RawMessage `json:"@enabled"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	var err error
	if len(aux.Number) > 0 {
		if p.Number, err = jsonInt(aux.Number); err != nil {
			return err
		}
	}
	e := strings.Trim(string(aux.Enabled), `"`)
	p.Enabled = e == "true" || (len(aux.Enabled) == 0 && p.Number > 0)
	return nil
}

func (p *port) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var aux struct {
		Number  string `xml:",chardata"`
		Enabled string `xml:"enabled,attr"`
	}
	if err := d.DecodeElement(&aux, &start); err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(aux.Number))
	if err != nil && strings.TrimSpace(aux.Number) != "" {
		return fmt.Errorf("port %q: %w", aux.Number, err)
	}
	p.Number, p.Enabled = n, aux.Enabled == "true" || (aux.Enabled == "" && n > 0)
	return nil
}

// jsonInt reads a JSON number or a string holding one.
func jsonInt(b []byte) (int, error) {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %s", b)
	}
	return n, nil
}

// flexInt is a JSON number or numeric string (Eureka clients send both).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	n, err := jsonInt(b)
	*f = flexInt(n)
	return err
}

// metadata is a string map: a JSON object (values of any scalar type) or
// XML child elements.
type metadata map[string]string

func (m *metadata) UnmarshalJSON(b []byte) error {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*m = metadata{}
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			(*m)[k] = v
		case float64, bool:
			(*m)[k] = fmt.Sprint(v)
		case nil:
		default:
			return fmt.Errorf("metadata %q: want a string", k)
		}
	}
	return nil
}

func (m *metadata) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	*m = metadata{}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var v string
			if err := d.DecodeElement(&v, &t); err != nil {
				return err
			}
			(*m)[t.Name.Local] = v
		case xml.EndElement:
			return nil
		}
	}
}

type dataCenterIn struct {
	Name string `json:"name" xml:"name"`
}

type leaseIn struct {
	RenewalIntervalInSecs flexInt `json:"renewalIntervalInSecs" xml:"renewalIntervalInSecs"`
	DurationInSecs        flexInt `json:"durationInSecs" xml:"durationInSecs"`
}

// instanceIn is the part of Eureka's InstanceInfo this package reads.
type instanceIn struct {
	InstanceID       string       `json:"instanceId" xml:"instanceId"`
	HostName         string       `json:"hostName" xml:"hostName"`
	App              string       `json:"app" xml:"app"`
	IPAddr           string       `json:"ipAddr" xml:"ipAddr"`
	VIPAddress       string       `json:"vipAddress" xml:"vipAddress"`
	SecureVIPAddress string       `json:"secureVipAddress" xml:"secureVipAddress"`
	Status           string       `json:"status" xml:"status"`
	Port             port         `json:"port" xml:"port"`
	SecurePort       port         `json:"securePort" xml:"securePort"`
	HomePageURL      string       `json:"homePageUrl" xml:"homePageUrl"`
	StatusPageURL    string       `json:"statusPageUrl" xml:"statusPageUrl"`
	HealthCheckURL   string       `json:"healthCheckUrl" xml:"healthCheckUrl"`
	DataCenterInfo   dataCenterIn `json:"dataCenterInfo" xml:"dataCenterInfo"`
	LeaseInfo        leaseIn      `json:"leaseInfo" xml:"leaseInfo"`
	Metadata         metadata     `json:"metadata" xml:"metadata"`
}

// serviceName maps a Eureka application name onto a registry service:
// Eureka names are case-insensitive and reported upper case, registry
// names are kept lower case.
func serviceName(app string) string { return strings.ToLower(app) }

// appName is the Eureka name of a registry service.
func appName(service string) string { return strings.ToUpper(service) }

// instanceID maps a Eureka instance ID onto a registry ID. Eureka IDs are
// often "host:app:port", and ':' is not allowed in registry IDs, so any
// other ID is made safe and suffixed with a hash of the original (the
// original is kept in metadata and reported back). The mapping is a pure
// function, so a heartbeat finds its instance without a lookup.
func instanceID(id string) string {
	if validName(id) {
		return id
	}
	b := []byte(id)
	for i, c := range b {
		if !nameByte(c) {
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("%s-%08x", b, h.Sum32())
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

// decodeInstance parses a registration body (JSON {"instance": {...}} or
// XML <instance>…</instance>, told apart by the first byte) for the
// application in the path.
func decodeInstance(body []byte, app string) (registry.RegisterRequest, bulwark.Health, error) {
	var req registry.RegisterRequest
	if len(body) > maxBody {
		return req, 0, badRequest("body larger than %d bytes", maxBody)
	}
	var in instanceIn
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return req, 0, badRequest("empty body: want an instance in JSON or XML")
	case trimmed[0] == '<':
		if err := xml.Unmarshal(trimmed, &in); err != nil {
			return req, 0, badRequest("malformed XML instance: %v", err)
		}
	default:
		var wrap struct {
			Instance *instanceIn `json:"instance"`
		}
		if err := json.Unmarshal(trimmed, &wrap); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				return req, 0, badRequest("field %s: want %s", te.Field, te.Type)
			}
			return req, 0, badRequest("malformed JSON instance: %v", err)
		}
		if wrap.Instance == nil {
			return req, 0, badRequest(`want {"instance": {...}}`)
		}
		in = *wrap.Instance
	}
	return translate(in, app)
}

// translate turns a decoded Eureka instance into a registration.
func translate(in instanceIn, app string) (registry.RegisterRequest, bulwark.Health, error) {
	var req registry.RegisterRequest
	if in.App != "" && !strings.EqualFold(in.App, app) {
		return req, 0, badRequest("instance app %q does not match the path's %q", in.App, app)
	}
	id := in.InstanceID
	if id == "" {
		id = in.HostName // Eureka clients before instanceId used the host name
	}
	if id == "" {
		return req, 0, badRequest("instance has neither instanceId nor hostName")
	}
	host := in.IPAddr
	if host == "" {
		host = in.HostName
	}
	if host == "" {
		return req, 0, badRequest("instance has neither ipAddr nor hostName")
	}
	switch {
	case in.Port.Enabled && in.Port.Number > 0 && in.Port.Number < 65536:
		req.Address = "http://" + net.JoinHostPort(host, strconv.Itoa(in.Port.Number))
	case in.SecurePort.Enabled && in.SecurePort.Number > 0 && in.SecurePort.Number < 65536:
		req.Address = "https://" + net.JoinHostPort(host, strconv.Itoa(in.SecurePort.Number))
	default:
		return req, 0, badRequest("instance has no enabled port or securePort in 1-65535")
	}
	req.Service, req.ID = serviceName(app), instanceID(id)
	lease := time.Duration(in.LeaseInfo.DurationInSecs) * time.Second
	if in.LeaseInfo.DurationInSecs <= 0 {
		lease = defaultLease
	}
	req.TTL = registry.Duration(lease)
	if u, err := url.Parse(in.HealthCheckURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && len(in.HealthCheckURL) <= 512 {
		req.HealthURL = in.HealthCheckURL
	}

	meta := map[string]string{}
	for k, v := range in.Metadata {
		if strings.HasPrefix(k, "eureka.") {
			return req, 0, badRequest("metadata key %q: the eureka. prefix is reserved", k)
		}
		if k == "@class" { // Jackson's type hint, not user metadata
			continue
		}
		meta[k] = v
	}
	status := strings.ToUpper(in.Status)
	if status == "" {
		status = "UP"
	}
	switch status {
	case "UP", "DOWN", "STARTING", "OUT_OF_SERVICE", "UNKNOWN":
	default:
		return req, 0, badRequest("status %q: want UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN", in.Status)
	}
	set := func(k, v string) {
		if v != "" {
			meta[k] = v
		}
	}
	if id != req.ID {
		set(metaInstanceID, id)
	}
	set(metaHostName, in.HostName)
	set(metaIPAddr, in.IPAddr)
	set(metaVIP, in.VIPAddress)
	set(metaSecureVIP, in.SecureVIPAddress)
	if status != "UP" {
		set(metaStatus, status)
	}
	if in.Port.Number > 0 {
		set(metaPort, portString(in.Port))
	}
	if in.SecurePort.Number > 0 {
		set(metaSecurePort, portString(in.SecurePort))
	}
	set(metaHomePage, in.HomePageURL)
	set(metaStatusPage, in.StatusPageURL)
	set(metaDataCenter, in.DataCenterInfo.Name)
	if in.LeaseInfo.RenewalIntervalInSecs > 0 {
		set(metaRenewal, strconv.FormatInt(int64(in.LeaseInfo.RenewalIntervalInSecs), 10))
	}
	if len(meta) > 0 {
		req.Metadata = meta
	}
	health := bulwark.HealthUp
	if status != "UP" {
		health = bulwark.HealthSuspect
	}
	return req, health, nil
}

// portString is "8080" or "8080/off" for a disabled port.
func portString(p port) string {
	s := strconv.Itoa(p.Number)
	if !p.Enabled {
		s += "/off"
	}
	return s
}

func parsePort(s string) port {
	n, off := strings.CutSuffix(s, "/off")
	v, _ := strconv.Atoi(n)
	return port{Number: v, Enabled: !off && v > 0}
}
