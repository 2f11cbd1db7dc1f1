package normalize

// state is the scratch memory of one Append call, pooled per Normalizer.
type state struct {
	cfg     *config
	frames  []frame     // frames[d] is the open container at depth d (1-based)
	keys    []keyRef    // keys of open objects past linearKeys members, innermost last
	members []memberRef // JCS only: where each of those keys' members sits in the output
	arena   []byte      // comparable keys not canonical as written (escapes, non-ASCII folded)
	tmp     []byte      // JCS member reordering, folding
	folded  []byte      // folding
	low     []byte      // folding: a lowercased key to hash
	folder  folder      // stateful, so each pooled state owns one

	bigTables bool    // some frame holds a hash set larger than retainTable
	rewrite   bool    // set by str: the string scanned is not canonical as written
	esValue   bool    // set by number (JCS): write esFloat instead of the literal
	esFloat   float64 // the value for esValue
	exponent  bool    // set by number: some number has an exponent (Facts)
}

// Scratch larger than this is dropped instead of pooled (entries, not bytes, for retainTable).
const (
	retainBytes = 256 << 10
	retainKeys  = 4096
	retainTable = 1 << 14
)

func newState(c *config) *state {
	return &state{cfg: c, frames: make([]frame, c.maxDepth+1)}
}

// release readies s for the pool.
func (s *state) release() {
	s.keys = trim(s.keys[:0], retainKeys)
	s.members = trim(s.members[:0], retainKeys)
	s.arena = trim(s.arena[:0], retainBytes)
	s.tmp = trim(s.tmp[:0], retainBytes)
	s.folded = trim(s.folded[:0], retainBytes)
	s.low = trim(s.low[:0], retainBytes)
	s.folder.release()
	if s.bigTables {
		for d := range s.frames {
			if cap(s.frames[d].tab) > retainTable {
				s.frames[d].tab = nil
			}
		}
		s.bigTables = false
	}
}

func trim[T any](b []T, limit int) []T {
	if cap(b) > limit {
		return nil
	}
	return b
}
