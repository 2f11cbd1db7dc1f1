package main

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttwaf/mqttwaf/hooks"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// store is the broker's durable state under -data-dir (hooks.Storage): nil
// when -data-dir is empty, and then every method does nothing and the broker
// keeps everything in memory, as before.
type store struct{ s *hooks.Storage }

// openStore opens the database in dir before the WAF is built, so the WAF
// gets the view key stored with the messages. A directory that cannot be
// used is an error naming -data-dir: a broker asked to keep its state must
// not start without it.
func openStore(dir string) (*store, error) {
	if dir == "" {
		return &store{}, nil
	}
	s, err := hooks.OpenStorage(hooks.StorageOptions{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("-data-dir %s: %w", dir, err)
	}
	return &store{s}, nil
}

// options adds the stored view key to the WAF's options.
func (st *store) options(o mqttwaf.Options) mqttwaf.Options {
	if st.s != nil {
		o.ViewKey = st.s.ViewKey()
	}
	return o
}

// install restores the bans and lockouts and adds the storage hook (after
// the WAF's hooks); mochi loads sessions and retained messages in Serve.
func (st *store) install(server *mqtt.Server, waf *mqttwaf.WAF) error {
	if st.s == nil {
		return nil
	}
	if err := st.s.Install(server, waf); err != nil {
		return fmt.Errorf("-data-dir: %w", err)
	}
	return nil
}

// close closes the database: at shutdown the server has already closed it
// (this does nothing then); on a failed start-up this is what closes it.
func (st *store) close() {
	if st.s != nil {
		_ = st.s.Close()
	}
}
