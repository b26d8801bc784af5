package eureka

import (
	"errors"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

func TestDecodeInstance(t *testing.T) {
	cases := []struct {
		name, body       string
		wantID, wantAddr string
		wantTTL          string
		wantHealth       bulwark.Health
		wantErr          bool
	}{
		{name: "spring json", body: `{"instance":{"instanceId":"10.0.0.1:orders:8080","hostName":"h","app":"ORDERS","ipAddr":"10.0.0.1","status":"UP","port":{"$":8080,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"},"leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90},"metadata":{"management.port":"8081","@class":"java.util.Collections$EmptyMap"},"dataCenterInfo":{"@class":"x","name":"MyOwn"}}}`,
			wantID: instanceID("10.0.0.1:orders:8080"), wantAddr: "http://10.0.0.1:8080", wantTTL: "1m30s", wantHealth: bulwark.HealthUp},
		{name: "xml", body: `<instance><hostName>h1</hostName><app>ORDERS</app><ipAddr>::1</ipAddr><status>STARTING</status><port enabled="true">81</port><leaseInfo><durationInSecs>5</durationInSecs></leaseInfo><metadata><zone>a</zone></metadata></instance>`,
			wantID: "h1", wantAddr: "http://[::1]:81", wantTTL: "5s", wantHealth: bulwark.HealthSuspect},
		{name: "secure only", body: `{"instance":{"instanceId":"s1","ipAddr":"1.2.3.4","port":{"$":"80","@enabled":"false"},"securePort":{"$":"8443","@enabled":"true"}}}`,
			wantID: "s1", wantAddr: "https://1.2.3.4:8443", wantTTL: "1m30s", wantHealth: bulwark.HealthUp},
		{name: "bare port", body: `{"instance":{"instanceId":"p","ipAddr":"1.2.3.4","port":8080}}`, wantID: "p", wantAddr: "http://1.2.3.4:8080", wantTTL: "1m30s", wantHealth: bulwark.HealthUp},
		{name: "no port", body: `{"instance":{"instanceId":"p","ipAddr":"1.2.3.4"}}`, wantErr: true},
		{name: "other app", body: `{"instance":{"instanceId":"p","app":"BILLING","ipAddr":"1.2.3.4","port":1}}`, wantErr: true},
		{name: "no id", body: `{"instance":{"ipAddr":"1.2.3.4","port":1}}`, wantErr: true},
		{name: "bad status", body: `{"instance":{"instanceId":"p","ipAddr":"1.2.3.4","port":1,"status":"FINE"}}`, wantErr: true},
		{name: "reserved metadata", body: `{"instance":{"instanceId":"p","ipAddr":"1.2.3.4","port":1,"metadata":{"eureka.status":"UP"}}}`, wantErr: true},
		{name: "not wrapped", body: `{"instanceId":"p"}`, wantErr: true},
		{name: "empty", body: ``, wantErr: true},
		{name: "bad xml", body: `<instance><port>x</port></instance>`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, h, err := decodeInstance([]byte(tc.body), "orders")
			if tc.wantErr {
				if !errors.Is(err, registry.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.ID != tc.wantID || req.Address != tc.wantAddr || time.Duration(req.TTL).String() != tc.wantTTL || h != tc.wantHealth || req.Service != "orders" {
				t.Fatalf("got %+v ttl %v health %v", req, req.TTL, h)
			}
		})
	}
}

func TestInstanceID(t *testing.T) {
	a, b := instanceID("h:app:80"), instanceID("h_app_80")
	if a == b || !validName(a) || instanceID("h:app:80") != a || instanceID("plain-id") != "plain-id" {
		t.Fatalf("instanceID: %q %q", a, b)
	}
	long := instanceID(string(make([]byte, 300)))
	if !validName(long) {
		t.Fatalf("long id %q not valid", long)
	}
}

// FuzzDecodeInstance: any registration body yields a valid-looking
// request or an ErrInvalid, never a panic.
func FuzzDecodeInstance(f *testing.F) {
	for _, s := range []string{`{"instance":{"instanceId":"a:b","ipAddr":"1.2.3.4","port":{"$":8080,"@enabled":"true"},"metadata":{"k":1}}}`,
		`<instance><hostName>h</hostName><ipAddr>1.1.1.1</ipAddr><port enabled="true">80</port><metadata><a>b</a></metadata></instance>`,
		`{"instance":null}`, `<instance><port enabled="true">-1</port></instance>`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, _, err := decodeInstance(body, "APP")
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if !validName(req.ID) || req.Address == "" || req.TTL <= 0 {
			t.Fatalf("accepted %+v", req)
		}
	})
}
