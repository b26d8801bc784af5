package actor_test

import (
	"context"
	"fmt"

	"github.com/bulwark-go/bulwark/supervise"
	"github.com/bulwark-go/bulwark/supervise/actor"
)

// balance is the state of an account actor; its messages are deposits
// and balance queries.
type balance struct{ cents int }

type accountMsg struct {
	deposit int
	query   actor.Reply[int]
}

func (b *balance) Receive(ctx context.Context, m accountMsg) error {
	if m.deposit < 0 {
		return fmt.Errorf("negative deposit %d", m.deposit) // crash: restart with fresh state
	}
	b.cents += m.deposit
	if m.query != (actor.Reply[int]{}) {
		m.query.Send(b.cents)
	}
	return nil
}

func Example() {
	account := actor.New(actor.Config[accountMsg]{Name: "account", New: func() actor.Handler[accountMsg] { return &balance{} }})
	root := supervise.New(supervise.Config{Name: "bank"}, supervise.Spec{Name: "account", Service: account})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.Serve(ctx) }()

	ref := account.Ref()
	ref.Tell(ctx, accountMsg{deposit: 150})
	n, _ := actor.Ask(ctx, ref, func(r actor.Reply[int]) accountMsg { return accountMsg{deposit: 50, query: r} })
	fmt.Println("balance", n)
	_, err := actor.Ask(ctx, ref, func(r actor.Reply[int]) accountMsg { return accountMsg{deposit: -1, query: r} })
	fmt.Println(err)
	n, _ = actor.Ask(ctx, ref, func(r actor.Reply[int]) accountMsg { return accountMsg{query: r} })
	fmt.Println("balance after the restart", n)
	cancel()
	<-done
	// Output:
	// balance 200
	// actor: crashed while handling the message: actor account: negative deposit -1
	// balance after the restart 0
}
