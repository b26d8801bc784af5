package dashboard

import (
	"math"
	"testing"
	"time"
)

func TestBucketOfCoversValue(t *testing.T) {
	for _, us := range []uint64{0, 1, 7, 8, 9, 15, 16, 17, 100, 999, 1000, 1 << 20, 123456789, 1<<32 - 1} {
		i := bucketOf(us)
		lo, w := bucketRange(i)
		if float64(us) < lo || float64(us) >= lo+w {
			t.Errorf("bucketOf(%d) = %d covering [%v, %v): value outside", us, i, lo, lo+w)
		}
		if i > 0 {
			plo, pw := bucketRange(i - 1)
			if plo+pw != lo {
				t.Errorf("bucket %d ends at %v but bucket %d starts at %v", i-1, plo+pw, i, lo)
			}
		}
	}
	if got := bucketOf(1 << 40); got != numBuckets-1 {
		t.Errorf("bucketOf(2^40) = %d, want last bucket %d", got, numBuckets-1)
	}
}

// within reports whether got is within the histogram's relative error of
// want (half a bucket of 1/8 of a power of two: 6.25 %).
func within(got, want float64) bool {
	return math.Abs(got-want) <= want*0.0625+1e-9
}

func TestPointOf(t *testing.T) {
	type rec struct {
		lat time.Duration
		ok  bool
		n   int
	}
	tests := []struct {
		name         string
		recs         []rec
		dt           time.Duration
		wantRequests uint64
		wantFailures uint64
		wantRPS      float64
		wantSuccess  float64
		wantP50ms    float64
		wantP99ms    float64
	}{
		{name: "idle", dt: time.Second},
		{name: "uniform 10ms", recs: []rec{{10 * time.Millisecond, true, 100}}, dt: time.Second,
			wantRequests: 100, wantRPS: 100, wantSuccess: 1, wantP50ms: 10, wantP99ms: 10},
		{name: "two seconds halve the rate", recs: []rec{{5 * time.Millisecond, true, 50}}, dt: 2 * time.Second,
			wantRequests: 50, wantRPS: 25, wantSuccess: 1, wantP50ms: 5, wantP99ms: 5},
		{name: "tail", recs: []rec{{2 * time.Millisecond, true, 980}, {300 * time.Millisecond, true, 20}}, dt: time.Second,
			wantRequests: 1000, wantRPS: 1000, wantSuccess: 1, wantP50ms: 2, wantP99ms: 300},
		{name: "p99 just inside the fast group", recs: []rec{{1 * time.Millisecond, true, 990}, {1 * time.Second, false, 10}}, dt: time.Second,
			wantRequests: 1000, wantFailures: 10, wantRPS: 1000, wantSuccess: 0.99, wantP50ms: 1, wantP99ms: 1},
		{name: "failures", recs: []rec{{20 * time.Millisecond, true, 3}, {40 * time.Millisecond, false, 1}}, dt: time.Second,
			wantRequests: 4, wantFailures: 1, wantRPS: 4, wantSuccess: 0.75, wantP50ms: 20, wantP99ms: 40},
		{name: "sub-8µs exact", recs: []rec{{3 * time.Microsecond, true, 10}}, dt: 500 * time.Millisecond,
			wantRequests: 10, wantRPS: 20, wantSuccess: 1, wantP50ms: 0.003, wantP99ms: 0.003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTraffic()
			tr.Record(time.Millisecond, true) // before the interval: must not count
			start := time.Unix(1000, 0)
			s := newSeries(tr, 4, start)
			for _, r := range tt.recs {
				for range r.n {
					tr.Record(r.lat, r.ok)
				}
			}
			p := s.sample(start.Add(tt.dt))
			if p.Requests != tt.wantRequests || p.Failures != tt.wantFailures {
				t.Errorf("requests, failures = %d, %d; want %d, %d", p.Requests, p.Failures, tt.wantRequests, tt.wantFailures)
			}
			if math.Abs(p.RPS-tt.wantRPS) > 1e-9 {
				t.Errorf("rps = %v, want %v", p.RPS, tt.wantRPS)
			}
			if math.Abs(p.Success-tt.wantSuccess) > 1e-9 {
				t.Errorf("success = %v, want %v", p.Success, tt.wantSuccess)
			}
			if !within(p.P50ms, tt.wantP50ms) || !within(p.P99ms, tt.wantP99ms) {
				t.Errorf("p50, p99 = %v, %v ms; want %v, %v (±6.25%%)", p.P50ms, p.P99ms, tt.wantP50ms, tt.wantP99ms)
			}
			if p.Seq != 1 || p.T != start.Add(tt.dt).UnixMilli() {
				t.Errorf("seq, t = %d, %d; want 1, %d", p.Seq, p.T, start.Add(tt.dt).UnixMilli())
			}
			// The next interval starts from here: nothing new, nothing counted.
			if p2 := s.sample(start.Add(tt.dt + time.Second)); p2.Requests != 0 || p2.RPS != 0 || p2.Seq != 2 {
				t.Errorf("next point = %+v, want an idle point with seq 2", p2)
			}
		})
	}
}

func TestSeriesKeepsLastPoints(t *testing.T) {
	tr := NewTraffic()
	start := time.Unix(0, 0)
	s := newSeries(tr, 3, start)
	for i := range 5 {
		for range i + 1 {
			tr.Record(time.Millisecond, true)
		}
		s.sample(start.Add(time.Duration(i+1) * time.Second))
	}
	all := s.since(0)
	if len(all) != 3 {
		t.Fatalf("held %d points, want 3", len(all))
	}
	for i, p := range all {
		if want := uint64(i + 3); p.Seq != want || p.Requests != want {
			t.Errorf("point %d: seq %d requests %d, want %d and %d", i, p.Seq, p.Requests, want, want)
		}
	}
	if got := s.since(4); len(got) != 1 || got[0].Seq != 5 {
		t.Errorf("since(4) = %+v, want only seq 5", got)
	}
	if got := s.since(5); len(got) != 0 {
		t.Errorf("since(5) = %+v, want none", got)
	}
}

func TestTrafficNilAndTotals(t *testing.T) {
	var nilT *Traffic
	nilT.Record(time.Second, false) // must not panic
	var tr Traffic                  // zero value works
	tr.Record(-time.Second, true)
	tr.Record(time.Hour*2000, false) // beyond the last bucket
	if r, f := tr.Totals(); r != 2 || f != 1 {
		t.Errorf("totals = %d, %d; want 2, 1", r, f)
	}
}

func BenchmarkTrafficRecord(b *testing.B) {
	tr := NewTraffic()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tr.Record(time.Duration(i&1023)*time.Microsecond, i&63 != 0)
	}
}

func BenchmarkTrafficRecordParallel(b *testing.B) {
	tr := NewTraffic()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tr.Record(time.Duration(i&1023)*time.Microsecond, i&63 != 0)
			i++
		}
	})
}

func BenchmarkSeriesSample(b *testing.B) {
	tr := NewTraffic()
	start := time.Now()
	s := newSeries(tr, 120, start)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tr.Record(time.Millisecond, true)
		s.sample(start.Add(time.Duration(i) * time.Second))
	}
}
