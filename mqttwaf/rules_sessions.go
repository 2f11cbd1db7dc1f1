package mqttwaf

import (
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate"
)

// takeoverGuard refuses a CONNECT that would take over a session owned by
// another identity. In plain MQTT (and in mochi) the second connection with a
// client ID takes the session and its queued messages, whoever it is.
//
// Identity is Client.Username, which the identity rules set to the
// authenticated name (or certificate identity). Anonymous connections share
// the empty identity and so do not protect their sessions from each other.
//
// A node knows only the sessions connected through itself: with
// state.backend redis (shared set) the owner recorded by any node, and the
// claim of a CONNECT under way on any node, are checked too (one round
// trip).
type takeoverGuard struct {
	claims        *claimTable
	shared        *redisstate.Owners
	refuseUnknown bool // sessions.owner_unknown: refuse
	ttl           time.Duration
	max           int
	now           func() time.Time
}

func (*takeoverGuard) ID() string { return "sessions.takeover" }

func (r *takeoverGuard) CheckConnect(c *Connect) Verdict {
	owner := c.Client.Username
	if s := c.Session; s != nil && s.Owner != owner {
		return Deny("", "session_owned_by_other_identity", CodeClientIDNotValid)
	}
	switch r.claims.take(c.Client.ID, owner, r.now(), r.ttl, r.max) {
	case claimedOther:
		return Deny("", "client_id_claimed_by_other_identity", CodeClientIDNotValid)
	case claimsFull:
		return Deny("", "connect_claims_full", CodeServerBusy)
	}
	c.claimed = true
	if r.shared == nil || c.Client.ID == "" {
		return Verdict{}
	}
	res, err := r.shared.Claim(c.Client.ID, owner, r.ttl)
	var v Verdict
	switch {
	case err != nil:
		if !r.refuseUnknown || c.Session != nil {
			return Verdict{} // this node's sessions decide, as with the memory backend
		}
		v = Deny("", "session_owner_unknown", CodeServerUnavailable)
		v.Detail = "redis is unreachable, so the owner of this client ID's session on other nodes is unknown, and sessions.owner_unknown is refuse: the client may retry once redis is back (set it to local to decide on this node's sessions alone)"
	case res == redisstate.OwnedByOther:
		v = Deny("", "session_owned_by_other_identity", CodeClientIDNotValid)
		v.Detail = "the session of this client ID belongs to another identity, connected or kept through another node (state.backend redis)"
	case res == redisstate.ClaimedByOther:
		v = Deny("", "client_id_claimed_by_other_identity", CodeClientIDNotValid)
		v.Detail = "another identity is connecting with this client ID through another node (state.backend redis)"
	default:
		c.sharedClaim = true
		return Verdict{}
	}
	r.claims.release(c.Client.ID, owner)
	c.claimed = false
	return v
}
