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
	// newIDs, when new_client_ids is in force, is asked for its budgets:
	// the claim and the budget check of a client ID this node has not
	// admitted lately go to Redis in one round trip.
	newIDs *newClientIDs
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
	res, err := r.claim(c)
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

// claim claims c's client ID in Redis and, when new_client_ids is in force
// and this node has not admitted the client ID lately, checks and spends
// its budgets in the same round trip (one script: the budgets are spent
// only if the claim succeeds), leaving the answer in c.newID.
func (r *takeoverGuard) claim(c *Connect) (int, error) {
	id, owner := c.Client.ID, c.Client.Username
	if r.newIDs == nil {
		return r.shared.Claim(id, owner, r.ttl)
	}
	now := r.now()
	bs := r.newIDs.sharedBudgets(now, id, r.newIDs.budgets(c.Client))
	if bs == nil {
		return r.shared.Claim(id, owner, r.ttl)
	}
	res, admitted, err := r.shared.ClaimAdmit(id, owner, r.ttl, now, "new_ids", r.newIDs.st.policy.NewClientIDs.Global.Per, bs)
	switch {
	case err != nil:
		c.newID = admitUnanswered
	case res != redisstate.ClaimOK:
		// refused: no budget spent; new_client_ids (which runs only in
		// detection-only mode after this) asks itself
	case admitted:
		c.newID = admitAllowed
	default:
		c.newID = admitRefused
	}
	return res, err
}
