package hooks

import (
	"reflect"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// foreignAuthHooks lists the ids of hooks on server, other than the WAF's,
// that provide OnConnectAuthenticate or OnACLCheck.
//
// (Our own hooks answer Provides by their place in a stack; they are
// skipped.)
//
// mochi keeps its hooks in an unexported field with no accessor; the
// pinned mochi version (v2.7.9) is read through reflection, and
// TestInstallSeesMochiHooks fails if a new version moves the field.
func foreignAuthHooks(server *mqtt.Server) []string {
	hs := serverHooks(server)
	if hs == nil {
		return []string{"(unknown: cannot read the server's hooks)"}
	}
	var ids []string
	for _, h := range hs.GetAll() {
		if m, ours := h.(interface{ isMember() *member }); ours && m.isMember().st != nil {
			continue
		}
		if h.Provides(mqtt.OnConnectAuthenticate) || h.Provides(mqtt.OnACLCheck) {
			ids = append(ids, h.ID())
		}
	}
	return ids
}

// serverHooks returns the server's *mqtt.Hooks, or nil if it cannot.
func serverHooks(server *mqtt.Server) *mqtt.Hooks {
	f := reflect.ValueOf(server).Elem().FieldByName("hooks")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*mqtt.Hooks)(nil)) || f.IsNil() {
		return nil
	}
	return (*mqtt.Hooks)(f.UnsafePointer())
}
