package health

import (
	"context"
	"errors"
	"math"
	"slices"
	"time"
)

// sample is one endpoint's traffic in the interval that just ended.
type sample struct {
	h       *host
	ok      int64
	total   int64
	latency float64 // mean, ns
}

// Tick runs one analysis at now: it un-ejects endpoints whose ejection
// time is over (they then come back with the balancer's slow start), lets
// ejection multipliers shrink, and ejects success-rate and latency outliers
// of the interval that just ended. [Detector.Start] calls it every
// Interval; owners that drive time themselves (tests, a shared scheduler)
// call it directly.
func (d *Detector) Tick(now time.Time) {
	d.mu.Lock()
	hosts := *d.hosts.Load()
	var evs []event
	samples := make([]sample, 0, len(hosts))
	for _, h := range hosts {
		switch {
		case h.ejected && !now.Before(h.until):
			h.ejected, h.known, h.calmSince, h.probeUp = false, true, now, now // back: a flap soon after counts
			d.ejected--
			h.consecGW.Store(0)
			h.consec5xx.Store(0)
			d.log.Info("endpoint un-ejected", "endpoint", h.id, "ejections", h.ejections)
			evs = d.refresh(h, evs)
		case !h.ejected && h.ejections > 0 && now.Sub(h.calmSince) >= d.cfg.BaseEjectionTime:
			h.ejections--
			h.calmSince = now
		}
		ok, total, lat := h.ok.Swap(0), h.total.Swap(0), h.latSum.Swap(0)
		if h.ejected || total < int64(d.cfg.RequestVolume) || total == 0 {
			continue
		}
		samples = append(samples, sample{h: h, ok: ok, total: total, latency: float64(lat) / float64(total)})
	}
	evs = d.successRateOutliers(samples, now, evs)
	evs = d.latencyOutliers(samples, now, evs)
	d.unlockAndNotify(evs)
}

// successRateOutliers ejects endpoints whose success rate is below
// mean − factor × stdev over the endpoints with enough requests (Envoy's
// success-rate outlier detection). Call with d.mu held.
func (d *Detector) successRateOutliers(s []sample, now time.Time, evs []event) []event {
	if d.cfg.SuccessRateStdevFactor < 0 || len(s) < d.cfg.SuccessRateMinHosts || len(s) == 0 {
		return evs
	}
	rate := func(x sample) float64 { return float64(x.ok) / float64(x.total) }
	var sum float64
	for _, x := range s {
		sum += rate(x)
	}
	mean := sum / float64(len(s))
	var sq float64
	for _, x := range s {
		sq += (rate(x) - mean) * (rate(x) - mean)
	}
	threshold := mean - d.cfg.SuccessRateStdevFactor*math.Sqrt(sq/float64(len(s)))
	// Worst first, so that the ejection cap keeps the worst ones out.
	slices.SortFunc(s, func(a, b sample) int { return cmpFloat(rate(a), rate(b)) })
	for _, x := range s {
		if rate(x) < threshold && !x.h.ejected {
			evs = d.eject(x.h, ReasonSuccessRate, now, evs)
		}
	}
	return evs
}

// latencyOutliers ejects endpoints whose mean latency is above both
// factor × the median mean and LatencyMin. The median, unlike the mean, is
// not dragged up by the outlier itself. Call with d.mu held.
func (d *Detector) latencyOutliers(s []sample, now time.Time, evs []event) []event {
	if d.cfg.LatencyFactor < 0 || len(s) < d.cfg.LatencyMinHosts || len(s) == 0 {
		return evs
	}
	slices.SortFunc(s, func(a, b sample) int { return cmpFloat(a.latency, b.latency) })
	n := len(s)
	median := s[n/2].latency
	if n%2 == 0 {
		median = (s[n/2-1].latency + s[n/2].latency) / 2
	}
	threshold := max(d.cfg.LatencyFactor*median, float64(d.cfg.LatencyMin))
	for i := n - 1; i >= 0 && s[i].latency > threshold; i-- { // slowest first
		if !s[i].h.ejected {
			evs = d.eject(s[i].h, ReasonLatency, now, evs)
		}
	}
	return evs
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// errStarted is returned by a second Start.
var errStarted = errors.New("health: detector already started")

// Start runs [Detector.Tick] every Interval in a goroutine the Detector
// owns, until Close. It returns an error if already started or closed.
func (d *Detector) Start() error {
	d.life.Lock()
	defer d.life.Unlock()
	switch {
	case d.closed:
		return ErrClosed
	case d.started:
		return errStarted
	}
	d.started = true
	ctx, cancel := context.WithCancel(context.Background())
	d.cancelRun = cancel // Close ends the Run hook's wait
	go func() {
		defer close(d.done)
		if d.cfg.Run == nil {
			d.loop(context.Background())
			return
		}
		d.cfg.Run(ctx, "outlier", func(ctx context.Context) error { d.loop(ctx); return nil })
	}()
	return nil
}

// loop is the analysis loop started by Start, until Close or ctx ends.
func (d *Detector) loop(ctx context.Context) {
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.Tick(now)
		}
	}
}

// Close stops the analysis goroutine, if started, and waits for it. It is
// idempotent. Report and the other methods keep working; only the periodic
// analysis stops.
func (d *Detector) Close() error {
	d.life.Lock()
	defer d.life.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	close(d.stop)
	if d.cancelRun != nil {
		d.cancelRun()
	}
	if d.started {
		<-d.done
	}
	return nil
}
