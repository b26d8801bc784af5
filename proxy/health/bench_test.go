package health

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkReport is the per-try cost the proxy pays to feed outlier
// detection on the success path.
func BenchmarkReport(b *testing.B) {
	d, err := NewDetector(DetectorConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 16)
	for i := range ids {
		ids[i] = fmt.Sprint("http://127.0.0.1:", 9000+i)
	}
	d.SetEndpoints(ids)
	o := Outcome{Status: 200, Latency: 3 * time.Millisecond}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Report(ids[i&15], o)
		i++
	}
}

// BenchmarkReportParallel is Report under concurrent tries.
func BenchmarkReportParallel(b *testing.B) {
	d, err := NewDetector(DetectorConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 16)
	for i := range ids {
		ids[i] = fmt.Sprint("http://127.0.0.1:", 9000+i)
	}
	d.SetEndpoints(ids)
	o := Outcome{Status: 200, Latency: 3 * time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			d.Report(ids[i&15], o)
			i++
		}
	})
}
