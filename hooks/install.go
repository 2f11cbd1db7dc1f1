package hooks

import (
	"errors"
	"reflect"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Install adds w to server as its WAF hook; it is
// server.AddHook(new(WAF), &Options{WAF: w, Server: server}). Call it before
// Serve: it applies the policy's broker section to
// server.Options.Capabilities.
//
// mochi OR-s authentication and ACL hooks: the first hook that allows,
// allows. A WAF next to auth.AllowHook (or any other auth/ACL hook) would
// deny nothing, so the hook refuses a server that already has one, naming
// it; if one is added later, the WAF closes every connection and refuses
// every client from then on (it does not close the server: mochi's Close
// panics when called twice). The WAF must be the only authentication and
// ACL provider.
func Install(server *mqtt.Server, w *mqttwaf.WAF) error {
	if server == nil || w == nil {
		return errors.New("hooks: Install needs a server and a WAF")
	}
	return server.AddHook(new(WAF), &Options{WAF: w, Server: server})
}

// foreignAuthHooks lists the ids of hooks on server, other than the WAF's,
// that provide OnConnectAuthenticate or OnACLCheck.
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
		if _, ours := h.(*WAF); ours {
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
