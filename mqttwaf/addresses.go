package mqttwaf

import (
	"fmt"
	"net/netip"
)

// AddressesPolicy says what counts as one address for every per-address
// protection: the socket cap per IP, connect and publish rates per IP,
// flapping per IP, new client IDs per IP, password lockouts and IP bans.
//
// An IPv6 host does not have one address: a home or office network gets a
// /64 (or more) and every device picks addresses in it at will, often a new
// one a day for privacy. Keyed by the full /128, one network would have 2^64
// keys for every per-IP cap, rate, lockout and budget. So addresses are
// grouped into networks of these sizes before they are used as keys.
//
// The sizes apply from the policy the WAF starts with: a reload that
// changes them is refused (the open-socket counts and the state keyed by
// network would no longer add up), so change them with a restart.
type AddressesPolicy struct {
	// IPv6Prefix is the IPv6 network counted as one address (default 64).
	IPv6Prefix int `yaml:"ipv6_prefix" json:"ipv6_prefix"`
	// IPv4Prefix is the IPv4 network counted as one address (default 32:
	// each address; carrier-grade NAT already puts many devices behind one).
	IPv4Prefix int `yaml:"ipv4_prefix" json:"ipv4_prefix"`
}

func (a *AddressesPolicy) applyDefaults() {
	setDefault(&a.IPv6Prefix, 64)
	setDefault(&a.IPv4Prefix, 32)
}

func (a *AddressesPolicy) validate(fe *fieldErrors) {
	fe.intRange("addresses.ipv6_prefix", int64(a.IPv6Prefix), 16, 128)
	fe.intRange("addresses.ipv4_prefix", int64(a.IPv4Prefix), 8, 32)
}

// addressing groups remote addresses into the networks AddressesPolicy
// describes. The zero value keys every address on its own.
type addressing struct{ v4, v6 int }

func newAddressing(a AddressesPolicy) addressing {
	return addressing{v4: a.IPv4Prefix, v6: a.IPv6Prefix}
}

// network is the network ip counts as; the zero Prefix for a zero ip.
func (a addressing) network(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	bits := ip.BitLen()
	switch {
	case ip.Is4() && a.v4 > 0:
		bits = a.v4
	case ip.Is6() && a.v6 > 0:
		bits = a.v6
	}
	p, _ := ip.Prefix(bits)
	return p
}

// key is network(ip) as a string: the address itself when the network is a
// single address ("192.0.2.7"), the network otherwise ("2001:db8::/64").
func (a addressing) key(ip netip.Addr) string {
	p := a.network(ip)
	switch {
	case !p.IsValid():
		return ""
	case p.IsSingleIP():
		return p.Addr().String()
	}
	return p.String()
}

// checkUnchanged refuses a reload that would regroup addresses.
func (a addressing) checkUnchanged(p AddressesPolicy) error {
	if n := newAddressing(p); n != a {
		return fmt.Errorf("addresses: ipv4_prefix/ipv6_prefix changed from /%d and /%d to /%d and /%d: the state keyed by network cannot be regrouped while running; restart the broker to apply it", a.v4, a.v6, n.v4, n.v6)
	}
	return nil
}
