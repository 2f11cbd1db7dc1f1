package hooks

import (
	"errors"
	"fmt"
	"reflect"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Install adds w to server as its WAF hook and applies the policy's broker
// capabilities to server.Options.Capabilities (call it before Serve).
//
// mochi OR-s authentication and ACL hooks: the first hook that allows,
// allows. A WAF next to auth.AllowHook (or any other auth/ACL hook) would
// deny nothing, so Install refuses a server that already has one, naming
// it, and the hook shuts the server down if one is added later, before
// Serve. The WAF must be the only authentication and ACL provider.
func Install(server *mqtt.Server, w *mqttwaf.WAF) error {
	if server == nil || w == nil {
		return errors.New("hooks: Install needs a server and a WAF")
	}
	if ids := foreignAuthHooks(server); len(ids) > 0 {
		return fmt.Errorf("hooks: the server already has authentication/ACL hooks %v; mochi OR-s them, so the WAF would deny nothing: remove them and let the WAF be the only auth/ACL provider", ids)
	}
	if server.Options != nil && server.Options.Capabilities != nil {
		p := w.Policy()
		applyCapabilities(server.Options.Capabilities, p)
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
