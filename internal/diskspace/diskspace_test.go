package diskspace

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestGuard: a verdict holds for Every and is then asked again; concurrent
// checks (run with -race) agree; a zero Path or nil Guard never refuses.
func TestGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &Guard{Path: t.TempDir(), Min: 1 << 62, Every: time.Second}
		if err := g.Check(); err == nil {
			t.Fatal("2^62 bytes free?")
		}
		g.Min = 0 // read at the next refresh
		if err := g.Check(); err == nil {
			t.Fatal("verdict not kept for Every")
		}
		time.Sleep(time.Second)
		if err := g.Check(); err != nil {
			t.Fatalf("after Every: %v", err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if err := g.Check(); err != nil {
					t.Errorf("after Every: %v", err)
				}
			})
		}
		wg.Wait()
	})
	var nilGuard *Guard
	if nilGuard.Check() != nil || (&Guard{Min: 1 << 62}).Check() != nil {
		t.Fatal("a disabled guard refused")
	}
}
