package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
)

// TestUpOutvotesTheLieControl: in `bulwark up`, the dashboard's "lie"
// control makes a replica answer 30 % of reads with wrong data and a valid
// digest; the gateway votes on reads, so no wrong body reaches a client,
// and the outvoted replica shows up as a byzantine event in /api/events.
func TestUpOutvotesTheLieControl(t *testing.T) {
	_, gw, dash := startUp(t, t.TempDir())
	resp, err := http.Post(dash+"/api/instances/demo-1/fault", "application/json", strings.NewReader(`{"fault": "lie"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("lie through the dashboard: %s", resp.Status)
	}
	l := runLoad(t.Context(), 4, gw+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, 3*time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("demo-1 lying: %v", s)
	if s.corrupt != 0 {
		t.Fatalf("%d wrong bodies reached the client:%s", s.corrupt, failures(rs))
	}
	if ok := float64(s.total-s.failed) / float64(s.total); s.total == 0 || ok < 0.999 {
		t.Fatalf("success ratio %.4f over %d:%s", ok, s.total, failures(rs))
	}
	waitFor(t, 5*time.Second, func() bool {
		resp, err := http.Get(dash + "/api/events")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var evs []struct{ Kind, Text string }
		if json.NewDecoder(resp.Body).Decode(&evs) != nil {
			return false
		}
		for _, e := range evs {
			if e.Kind == "byzantine" && strings.Contains(e.Text, "outvoted") {
				return true
			}
		}
		return false
	})
}
