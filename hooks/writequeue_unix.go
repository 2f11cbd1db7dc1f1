//go:build unix

package hooks

import (
	"net"
	"syscall"
	"time"
)

// armWrites turns the queue on for g's socket once its CONNECT is
// accepted: from then on writes never wait for the socket (writeQueue).
// The CONNECT deadline stops applying to writes; the drain goroutine sets
// its own.
func (g *guardConn) armWrites() {
	sc, ok := g.Conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	q := &g.out
	q.mu.Lock()
	q.raw = raw
	q.try = func(fd uintptr) bool {
		for {
			n, err := syscall.Write(int(fd), q.tryBuf)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				n, err = 0, nil
			}
			q.tryN, q.tryErr = max(n, 0), err
			return true // never wait: what the socket did not take is queued
		}
	}
	q.mu.Unlock()
	_ = g.Conn.SetWriteDeadline(time.Time{})
	g.queued.Store(true)
}

// tryWrite writes what the socket takes of b now, without waiting. The
// caller holds q.mu.
func (q *writeQueue) tryWrite(b []byte) (int, error) {
	q.tryBuf, q.tryN, q.tryErr = b, 0, nil
	err := q.raw.Write(q.try)
	q.tryBuf = nil
	if err == nil && q.tryErr != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Err: q.tryErr}
	}
	return q.tryN, err
}
