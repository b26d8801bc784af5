package delivery_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/delivery"
)

// printForwarder stands in for the gateway's forwarding path.
type printForwarder struct{ done chan struct{} }

func (f printForwarder) Forward(_ context.Context, m *bulwark.Message) (int, error) {
	fmt.Println("delivering", m.Method, m.Path, "with Idempotency-Key", m.Header.Get("Idempotency-Key"))
	close(f.done)
	return 202, nil
}

// Open embeds a JetStream server in the process; Enqueue returns once the
// message is stored; a worker delivers it.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "delivery-example")
	defer os.RemoveAll(dir)
	fwd := printForwarder{done: make(chan struct{})}
	svc, err := delivery.Open(context.Background(), delivery.Config{DataDir: dir}, fwd)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Close()

	id, err := svc.Enqueue(context.Background(), &bulwark.Message{
		Route: "orders", Upstream: "orders-svc", Method: "POST", Path: "/orders",
		Body: []byte(`{"sku":42}`), IdempotencyKey: "order-42",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-fwd.done
	for {
		st, err := svc.Status(context.Background(), id)
		if err == nil && st.State == bulwark.DeliveryDelivered {
			fmt.Println(st.State, st.Status)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Output:
	// delivering POST /orders with Idempotency-Key order-42
	// delivered 202
}
