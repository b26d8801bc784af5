package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stats are the counters behind Snapshot and the metrics. Counters count
// what this Service did; backlog figures come from the streams, refreshed
// every StatsInterval, and so cover every worker on the cluster.
type stats struct {
	enqueued, duplicates, delivered, retried, deadLettered, replayed, redriven atomic.Uint64
	inFlight                                                                   atomic.Int64
	queued, deadLetters                                                        atomic.Int64
	oldest                                                                     atomic.Int64 // unix nanos of the oldest stored message, 0 if none
}

// Snapshot is a point-in-time summary for the dashboard.
type Snapshot struct {
	// Queued is the backlog: messages stored and not yet delivered or
	// dead-lettered (including those in flight or waiting to retry).
	Queued int64 `json:"queued"`
	// InFlight is the number of Forward calls running in this Service.
	InFlight int64 `json:"in_flight"`
	// DeadLetters is the number of messages in the dead-letter stream.
	DeadLetters int64 `json:"dead_letters"`
	// OldestAge is the age of the oldest message in the backlog.
	OldestAge time.Duration `json:"oldest_age"`
	// The counters since Open.
	Enqueued     uint64 `json:"enqueued"`
	Duplicates   uint64 `json:"duplicates"`
	Delivered    uint64 `json:"delivered"`
	Retried      uint64 `json:"retried"`
	DeadLettered uint64 `json:"dead_lettered"`
	Replayed     uint64 `json:"replayed"`
	// Redriven counts the messages this Service found passed over by their
	// consumer without being settled, and enqueued again (redriveOrphans).
	Redriven uint64 `json:"redriven"`
}

// Snapshot returns the current figures. Backlog figures are at most
// StatsInterval old. It does not block.
func (s *Service) Snapshot() Snapshot {
	st := &s.stats
	return Snapshot{
		Queued:       st.queued.Load(),
		InFlight:     st.inFlight.Load(),
		DeadLetters:  st.deadLetters.Load(),
		OldestAge:    s.oldestAge(),
		Enqueued:     st.enqueued.Load(),
		Duplicates:   st.duplicates.Load(),
		Delivered:    st.delivered.Load(),
		Retried:      st.retried.Load(),
		DeadLettered: st.deadLettered.Load(),
		Replayed:     st.replayed.Load(),
		Redriven:     st.redriven.Load(),
	}
}

func (s *Service) oldestAge() time.Duration {
	o := s.stats.oldest.Load()
	if o == 0 {
		return 0
	}
	return max(0, time.Since(time.Unix(0, o)))
}

// statsLoop refreshes the backlog figures until ctx ends.
func (s *Service) statsLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.StatsInterval)
	defer t.Stop()
	for n := 0; ; n++ {
		s.refreshStats(ctx)
		if n%orphanCheckEvery == orphanCheckEvery-1 && s.stats.queued.Load() > 0 {
			s.redriveOrphans(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) refreshStats(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	if info, err := s.work.Info(cctx); err == nil {
		s.stats.queued.Store(int64(info.State.Msgs))
		if info.State.Msgs == 0 {
			s.stats.oldest.Store(0)
		} else {
			s.stats.oldest.Store(info.State.FirstTime.UnixNano())
		}
	} else if !errors.Is(err, context.Canceled) {
		s.log.Debug("delivery: work stream info", "err", err)
	}
	if info, err := s.dead.Info(cctx); err == nil {
		s.stats.deadLetters.Store(int64(info.State.Msgs))
	}
}

// metrics exports the stats to Prometheus.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer, s *Service) (*metrics, error) {
	m := &metrics{reg: reg}
	if reg == nil {
		return m, nil
	}
	st := &s.stats
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "delivery", Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "bulwark", Subsystem: "delivery", Name: name, Help: help}, f)
	}
	m.collectors = []prometheus.Collector{
		counter("enqueued_total", "Messages accepted and stored.", &st.enqueued),
		counter("duplicates_total", "Enqueues deduplicated by Idempotency-Key.", &st.duplicates),
		counter("delivered_total", "Messages delivered (backend answered with a non-retryable status).", &st.delivered),
		counter("retried_total", "Failed attempts scheduled for another try.", &st.retried),
		counter("dead_lettered_total", "Messages moved to the dead-letter stream.", &st.deadLettered),
		counter("replayed_total", "Dead letters re-enqueued by Replay.", &st.replayed),
		counter("redriven_total", "Messages their consumer passed over without settling them, enqueued again.", &st.redriven),
		gauge("queued", "Messages stored and not yet delivered or dead-lettered.", func() float64 { return float64(st.queued.Load()) }),
		gauge("in_flight", "Forward calls running.", func() float64 { return float64(st.inFlight.Load()) }),
		gauge("dead_letters", "Messages in the dead-letter stream.", func() float64 { return float64(st.deadLetters.Load()) }),
		gauge("oldest_age_seconds", "Age of the oldest message in the backlog.", func() float64 { return s.oldestAge().Seconds() }),
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			m.collectors = m.collectors[:i]
			m.unregister()
			return nil, fmt.Errorf("delivery: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
