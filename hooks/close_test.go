package hooks

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// TestCloseWhileClientsChurn: Server.Close returns while clients keep
// connecting and disconnecting, and connected MQTT 5 clients are told
// (DISCONNECT 0x8B). mochi's own closeListenerClients can deadlock here
// (Clients.GetByListener read-locks twice, mochi issue #488), and its
// ClientsWg.Add in attachClient races Wait in CloseAll; the listener closes
// its own sockets and waits for them instead.
func TestCloseWhileClientsChurn(t *testing.T) {
	for round := range 8 {
		b := startBroker(t, "", brokerOpts{})
		held := rawConnectV5(t, b.addr, "held")
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					c, err := net.DialTimeout("tcp", b.addr, time.Second)
					if err != nil {
						return // closed
					}
					_ = c.SetDeadline(time.Now().Add(2 * time.Second))
					_, _ = c.Write(rawConnect(5, ""))
					_, _ = readPacketErr(c)
					_ = c.Close()
				}
			}()
		}
		time.Sleep(50 * time.Millisecond)
		closed := make(chan struct{})
		go func() { b.close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(15 * time.Second):
			t.Fatalf("round %d: Server.Close did not return", round)
		}
		cancel()
		wg.Wait()
		_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := readPacketErr(held); err != nil || len(got) < 3 || got[0] != 0xe0 || got[2] != 0x8b {
			t.Fatalf("round %d: connected client got % x, %v; want DISCONNECT 0x8B", round, got, err)
		}
	}
}
