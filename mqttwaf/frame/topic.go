package frame

import "bytes"

// hasWildcard reports whether a topic name contains '+' or '#', which only
// topic filters may [MQTT-3.3.2-2]. UTF-8 multi-byte sequences never
// contain ASCII bytes, so a byte search is exact.
func hasWildcard(s []byte) bool {
	for _, c := range s {
		if c == '+' || c == '#' {
			return true
		}
	}
	return false
}

var sharePrefix = []byte("$share/")

// filterProblem returns what is wrong with a topic filter, or "" if it is
// valid (section 4.7): non-empty [MQTT-4.7.3-1]; '#' alone in the last
// level [MQTT-4.7.1-1]; '+' alone in its level [MQTT-4.7.1-2]. A filter
// starting with "$share/" is a shared subscription (section 4.8.2): a
// non-empty share name without '+' or '#', a '/', then a non-empty valid
// filter [MQTT-4.8.2-1] [MQTT-4.8.2-2]. Shared subscriptions are an MQTT 5
// feature, but brokers (mosquitto, EMQX, HiveMQ, mochi) honour them for
// every protocol version, so their syntax is enforced for every version.
func filterProblem(f []byte) string {
	if len(f) == 0 {
		return "is empty [MQTT-4.7.3-1]"
	}
	if bytes.HasPrefix(f, sharePrefix) {
		rest := f[len(sharePrefix):]
		slash := bytes.IndexByte(rest, '/')
		switch {
		case slash < 0:
			return "is a shared subscription without a topic filter after the share name [MQTT-4.8.2-2]"
		case slash == 0:
			return "is a shared subscription with an empty share name [MQTT-4.8.2-1]"
		case hasWildcard(rest[:slash]):
			return "is a shared subscription whose share name contains '+' or '#' [MQTT-4.8.2-2]"
		case slash == len(rest)-1:
			return "is a shared subscription with an empty topic filter [MQTT-4.8.2-2]"
		}
		f = rest[slash+1:]
	}
	last := len(f) - 1
	for i, c := range f {
		switch c {
		case '#':
			if i != last || i > 0 && f[i-1] != '/' {
				return "has '#' other than alone in the last level [MQTT-4.7.1-1]"
			}
		case '+':
			if i > 0 && f[i-1] != '/' || i < last && f[i+1] != '/' {
				return "has '+' not alone in its level [MQTT-4.7.1-2]"
			}
		}
	}
	return ""
}

// isShared reports whether a valid filter is a shared subscription.
func isShared(f []byte) bool { return bytes.HasPrefix(f, sharePrefix) }
