package ratelimit

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Ban lists live in memory; a broker that must keep them across a restart
// saves a snapshot (SaveBans) on change or periodically and at shutdown, and
// restores it at start (RestoreBans). The snapshot is plain JSON, so an
// operator can read it, and it holds only what BanStore exposes, so it works
// for any implementation.
//
// What a snapshot does not carry: the offence history behind automatic bans
// (a ban set again after a restart starts at the first duration), and bans
// that ended before the restore.

// snapshotVersion is the format of SaveBans' document; RestoreBans refuses
// any other, so a newer format is never half-read.
const snapshotVersion = 1

// SavedBan is one ban as a snapshot holds it.
type SavedBan struct {
	Target  string    `json:"target"` // ParseTarget form: "client:ID", "user:NAME", "ip:NETWORK"
	Reason  string    `json:"reason,omitempty"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until,omitzero"` // zero: permanent
	Strikes int       `json:"strikes,omitempty"`
}

// banSnapshot is SaveBans' document. It holds no time of its own, so the
// snapshot of an unchanged list is the same bytes and a caller can skip the
// write.
type banSnapshot struct {
	Version int        `json:"version"`
	Bans    []SavedBan `json:"bans"`
}

// SaveBans returns the bans of s active at now as a JSON document for
// RestoreBans. Its size is bounded by the store's own cap (BanOptions.MaxBans
// for a BanList). The same active bans give the same bytes.
func SaveBans(s BanStore, now time.Time) ([]byte, error) {
	bans, err := s.List(now)
	if err != nil {
		return nil, err
	}
	doc := banSnapshot{Version: snapshotVersion, Bans: make([]SavedBan, 0, len(bans))}
	for _, b := range bans {
		sb := SavedBan{Target: b.Target.String(), Reason: b.Reason, Since: b.Since.UTC(), Strikes: b.Strikes}
		if !b.Until.IsZero() {
			sb.Until = b.Until.UTC()
		}
		doc.Bans = append(doc.Bans, sb)
	}
	return json.Marshal(doc)
}

// RestoreBans adds the bans of data (a SaveBans document) to s, each with
// the end it had: a ban that ended before now is skipped, so a ban keeps
// only its remaining duration. It returns how many were restored and how
// many skipped (ended, or refused by a full store). Data that is not a
// snapshot, or an entry that cannot be read, is an error and nothing after
// it is restored: a damaged file must be noticed, not half-applied in
// silence. Empty data restores nothing.
func RestoreBans(s BanStore, now time.Time, data []byte) (restored, skipped int, err error) {
	if len(data) == 0 {
		return 0, 0, nil
	}
	var doc banSnapshot
	if err := json.Unmarshal(data, &doc); err != nil {
		return 0, 0, fmt.Errorf("ratelimit: ban snapshot: %w", err)
	}
	if doc.Version != snapshotVersion {
		return 0, 0, fmt.Errorf("ratelimit: ban snapshot version %d: this build reads version %d", doc.Version, snapshotVersion)
	}
	for i, sb := range doc.Bans {
		t, err := ParseTarget(sb.Target)
		if err != nil {
			return restored, skipped, fmt.Errorf("ratelimit: ban snapshot entry %d: %w", i, err)
		}
		if !sb.Until.IsZero() && !sb.Until.After(now) {
			skipped++ // ended while the broker was down
			continue
		}
		err = s.Add(now, Ban{Target: t, Reason: sb.Reason, Since: sb.Since, Until: sb.Until, Strikes: sb.Strikes})
		switch {
		case errors.Is(err, ErrFull):
			skipped++ // the store keeps the bans that end last
		case err != nil:
			return restored, skipped, fmt.Errorf("ratelimit: ban snapshot entry %d (%s): %w", i, sb.Target, err)
		default:
			restored++
		}
	}
	return restored, skipped, nil
}
