package delivery

import (
	"context"
	"testing"
	"time"
)

// dumpState logs the work stream's and each consumer's state, and the dead
// letters, for a test that is about to fail.
func dumpState(t testing.TB, s *Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if info, err := s.work.Info(ctx); err == nil {
		t.Logf("work stream: msgs=%d first=%d last=%d consumers=%d", info.State.Msgs, info.State.FirstSeq, info.State.LastSeq, info.State.Consumers)
	}
	for l := s.work.ListConsumers(ctx); ; {
		ci, ok := <-l.Info()
		if !ok {
			break
		}
		t.Logf("consumer %s: ackwait=%v delivered=%d/%d ackfloor=%d/%d pending=%d ackpending=%d redelivered=%d waiting=%d",
			ci.Name, ci.Config.AckWait, ci.Delivered.Consumer, ci.Delivered.Stream, ci.AckFloor.Consumer, ci.AckFloor.Stream,
			ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting)
	}
	if dl, err := s.DeadLetters(ctx, 20); err == nil {
		for _, d := range dl {
			t.Logf("dead letter: %+v", d)
		}
	}
}
