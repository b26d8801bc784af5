package eureka_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
	"github.com/bulwark-go/bulwark/registry/eureka"
	"github.com/bulwark-go/bulwark/registry/internal/regtest"
	"github.com/hudl/fargo"
	logging "github.com/op/go-logging"
)

const token = "eureka-test-token"

func node(t *testing.T) *registry.Node {
	t.Helper()
	logging.SetLevel(logging.CRITICAL, "fargo") // fargo logs every 404 it expects
	return regtest.Cluster(t, 1, func(i int, c *registry.Config) {
		c.Token = token
		c.Mount = eureka.Mount(eureka.Options{})
	})[0]
}

func conn(n *registry.Node, json bool, tok string) fargo.EurekaConnection {
	c := fargo.NewConn("http://bulwark:" + tok + "@" + n.HTTPAddr() + "/eureka")
	c.UseJson = json
	return c
}

func instance(id string, port int, lease int32) *fargo.Instance {
	in := &fargo.Instance{InstanceId: id, HostName: "host-" + id, App: "ORDERS", IPAddr: "127.0.0.1",
		VipAddress: "orders", Status: fargo.UP, Port: port, PortEnabled: true,
		DataCenterInfo: fargo.DataCenterInfo{Name: fargo.MyOwn},
		LeaseInfo:      fargo.LeaseInfo{DurationInSecs: lease, RenewalIntervalInSecs: 1}}
	in.SetMetadataString("zone", "eu-1")
	return in
}

// TestFargoLifecycle drives the API with fargo, in both of its encodings:
// register, read back, heartbeat past the lease, fetch apps, cancel, and
// expiry once heartbeats stop.
func TestFargoLifecycle(t *testing.T) {
	n := node(t)
	for _, useJSON := range []bool{true, false} {
		name := map[bool]string{true: "json", false: "xml"}[useJSON]
		t.Run(name, func(t *testing.T) {
			c := conn(n, useJSON, token)
			id := "127.0.0.1:orders:8080-" + name // a Spring-style ID, with colons
			in := instance(id, 8080, 2)
			if err := c.RegisterInstance(in); err != nil {
				t.Fatalf("register: %v", err)
			}
			app, err := c.GetApp("ORDERS")
			if err != nil {
				t.Fatalf("get app: %v", err)
			}
			var got *fargo.Instance
			for _, i := range app.Instances {
				if i.InstanceId == id {
					got = i
				}
			}
			if got == nil {
				t.Fatalf("instance %s not in %+v", id, app.Instances)
			}
			zone, _ := got.Metadata.GetString("zone")
			if got.Status != fargo.UP || got.Port != 8080 || !got.PortEnabled || got.IPAddr != "127.0.0.1" ||
				got.HostName != "host-"+id || got.VipAddress != "orders" || zone != "eu-1" || got.LeaseInfo.DurationInSecs != 2 {
				t.Fatalf("read back %+v (zone %q)", got, zone)
			}
			// Heartbeats keep the 2 s lease alive well past 2 s.
			until := time.Now().Add(3 * time.Second)
			for time.Now().Before(until) {
				if err := c.HeartBeatInstance(in); err != nil {
					t.Fatalf("heartbeat: %v", err)
				}
				time.Sleep(300 * time.Millisecond)
			}
			apps, err := c.GetApps()
			if err != nil || apps["ORDERS"] == nil {
				t.Fatalf("get apps: %v %v", apps, err)
			}
			if st := statusOf(apps["ORDERS"], id); st != fargo.UP {
				t.Fatalf("after heartbeats: status %q, want UP", st)
			}
			if err := c.DeregisterInstance(in); err != nil {
				t.Fatalf("cancel: %v", err)
			}
			if err := c.HeartBeatInstance(in); err == nil {
				t.Fatal("heartbeat after cancel succeeded, want 404")
			}

			// Without heartbeats the instance goes DOWN, then leaves.
			in2 := instance("orders-2-"+name, 8081, 1)
			if err := c.RegisterInstance(in2); err != nil {
				t.Fatal(err)
			}
			regtest.Eventually(t, "the unrenewed instance to leave", func() bool {
				app, err := c.GetApp("ORDERS")
				var nf fargo.AppNotFoundError
				return errors.As(err, &nf) || (err == nil && statusOf(app, in2.InstanceId) == "")
			})
		})
	}
}

func statusOf(app *fargo.Application, id string) fargo.StatusType {
	for _, i := range app.Instances {
		if i.InstanceId == id {
			return i.Status
		}
	}
	return ""
}

// TestFargoAuth: writes need the registry's token, as basic-auth
// password or bearer token.
func TestFargoAuth(t *testing.T) {
	n := node(t)
	bad := conn(n, true, "wrong")
	if err := bad.ReregisterInstance(instance("x-1", 1, 30)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v, want 401", err)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+n.HTTPAddr()+"/eureka/apps/ORDERS/x-1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("bearer heartbeat of unknown instance: %v %v, want 404", resp.Status, err)
	}
	resp.Body.Close()
}

// TestStatusNotUp: an instance registered STARTING is listed but not
// routable, and heartbeats keep it so until it registers UP.
func TestStatusNotUp(t *testing.T) {
	n := node(t)
	c := conn(n, true, token)
	in := instance("boot-1", 9000, 30)
	in.Status = fargo.STARTING
	if err := c.ReregisterInstance(in); err != nil {
		t.Fatal(err)
	}
	if err := c.HeartBeatInstance(in); err != nil {
		t.Fatal(err)
	}
	sr := n.Service("orders")
	if len(sr.Instances) != 1 || sr.Instances[0].Health != bulwark.HealthSuspect {
		t.Fatalf("registry view %+v, want one suspect", sr.Instances)
	}
	app, _ := c.GetApp("ORDERS")
	if st := statusOf(app, "boot-1"); st != fargo.STARTING {
		t.Fatalf("eureka status %q, want STARTING", st)
	}
	in.Status = fargo.UP
	if err := c.ReregisterInstance(in); err != nil {
		t.Fatal(err)
	}
	if sr := n.Service("orders"); sr.Instances[0].Health != bulwark.HealthUp {
		t.Fatalf("after UP registration: %v", sr.Instances[0].Health)
	}
}

type deltaBody struct {
	Applications struct {
		Hash string `json:"apps__hashcode"`
		Apps []struct {
			Name      string `json:"name"`
			Instances []struct {
				ID     string `json:"instanceId"`
				Action string `json:"actionType"`
			} `json:"instance"`
		} `json:"application"`
	} `json:"applications"`
}

func getDelta(t *testing.T, n *registry.Node) deltaBody {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.HTTPAddr()+"/eureka/apps/delta", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var d deltaBody
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("delta %s: %v", b, err)
	}
	return d
}

// TestDelta: after a full fetch, the delta lists additions and
// cancellations with their action, and the hash describes the full
// registry.
func TestDelta(t *testing.T) {
	n := node(t)
	c := conn(n, true, token)
	if _, err := c.GetApps(); err != nil { // full fetch: the baseline
		t.Fatal(err)
	}
	a, b := instance("d-1", 7001, 30), instance("d-2", 7002, 30)
	for _, in := range []*fargo.Instance{a, b} {
		if err := c.ReregisterInstance(in); err != nil {
			t.Fatal(err)
		}
	}
	d := getDelta(t, n)
	if d.Applications.Hash != "UP_2_" || len(d.Applications.Apps) != 1 || len(d.Applications.Apps[0].Instances) != 2 ||
		d.Applications.Apps[0].Instances[0].Action != "ADDED" {
		t.Fatalf("delta after two registrations: %+v", d)
	}
	if err := c.DeregisterInstance(a); err != nil {
		t.Fatal(err)
	}
	d = getDelta(t, n)
	insts := d.Applications.Apps[0].Instances
	last := insts[len(insts)-1]
	if d.Applications.Hash != "UP_1_" || last.ID != "d-1" || last.Action != "DELETED" {
		t.Fatalf("delta after cancel: %+v", d)
	}
}
