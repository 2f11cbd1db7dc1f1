package mqttwaf

import "time"

// takeoverGuard refuses a CONNECT that would take over a session owned by
// another identity. In plain MQTT (and in mochi) the second connection with a
// client ID takes the session and its queued messages, whoever it is.
//
// Identity is Client.Username, which the identity rules set to the
// authenticated name (or certificate identity). Anonymous connections share
// the empty identity and so do not protect their sessions from each other.
type takeoverGuard struct {
	claims *claimTable
	ttl    time.Duration
	max    int
	now    func() time.Time
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
	return Verdict{}
}
