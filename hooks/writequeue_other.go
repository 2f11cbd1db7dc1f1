//go:build !unix

package hooks

// armWrites leaves writes blocking where the socket has no non-blocking
// write (see writeQueue).
func (g *guardConn) armWrites() {}

func (q *writeQueue) tryWrite(b []byte) (int, error) { panic("hooks: writeQueue without a socket") }
