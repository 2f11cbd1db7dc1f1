package mqttwaf

import (
	"strings"
	"unicode/utf8"
)

// clientIDLimits bounds client identifiers: length, and no characters that
// let an ID smuggle itself into topic templates ('/', '+', '#') or log lines
// (control characters).
type clientIDLimits struct{ max int }

func (*clientIDLimits) ID() string { return "limits.client_id" }

func (r *clientIDLimits) CheckConnect(c *Connect) Verdict {
	id := c.Client.ID
	if len(id) > r.max {
		return OverLimit("", "client_id_too_long", CodeClientIDNotValid, int64(len(id)), int64(r.max))
	}
	if strings.ContainsAny(id, "/+#") || hasControl(id) {
		return Deny("", "client_id_invalid_chars", CodeClientIDNotValid)
	}
	return Verdict{}
}

// topicLimits bounds topic names (publish, will) and filters (subscribe):
// length, number of levels, and no control characters. Topics beginning
// with '$' belong to the broker ($SYS, and $mqttwaf/ where the WAF parks
// wills it discards): clients may not publish to them, and no client may
// subscribe to $mqttwaf/.
type topicLimits struct{ maxLen, maxLevels int }

// ReservedPrefix starts the topics the WAF reserves for itself.
const ReservedPrefix = "$mqttwaf/"

func (*topicLimits) ID() string { return "limits.topic" }

func (r *topicLimits) check(t string, code ReasonCode) Verdict {
	if len(t) > r.maxLen {
		return OverLimit("", "topic_too_long", code, int64(len(t)), int64(r.maxLen))
	}
	if n := strings.Count(t, "/") + 1; n > r.maxLevels {
		return OverLimit("", "topic_too_many_levels", code, int64(n), int64(r.maxLevels))
	}
	if hasControl(t) {
		return Deny("", "topic_invalid_chars", code)
	}
	return Verdict{}
}

func (r *topicLimits) CheckPublish(p *Publish) Verdict {
	t := p.Message.Topic
	if t == "" { // e.g. an MQTT 5 topic alias that was never registered
		return Deny("", "topic_empty", CodeTopicNameInvalid)
	}
	if strings.HasPrefix(t, "$") {
		return Deny("", "topic_reserved", CodeTopicNameInvalid)
	}
	return r.check(t, CodeTopicNameInvalid)
}

func (r *topicLimits) CheckSubscribe(_ *Client, s *Subscription) Verdict {
	f := sharedFilter(s.Filter)
	if strings.HasPrefix(f, ReservedPrefix) || f == strings.TrimSuffix(ReservedPrefix, "/") {
		return Deny("", "topic_reserved", CodeNotAuthorized)
	}
	return r.check(f, CodeTopicFilterInvalid)
}

// sharedFilter strips "$share/group/" so a shared subscription is measured
// by the filter it really subscribes to.
func sharedFilter(f string) string {
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		if _, filter, ok := strings.Cut(rest, "/"); ok {
			return filter
		}
	}
	return f
}

// userPropertyLimits bounds MQTT 5 user properties per packet: count and
// total bytes of keys and values.
type userPropertyLimits struct{ maxCount, maxBytes int }

func (*userPropertyLimits) ID() string { return "limits.user_properties" }

func (r *userPropertyLimits) check(props []UserProperty) Verdict {
	if len(props) > r.maxCount {
		return OverLimit("", "too_many_user_properties", CodePacketTooLarge, int64(len(props)), int64(r.maxCount))
	}
	n := 0
	for _, p := range props {
		n += len(p.Key) + len(p.Value)
		// Keys are names: no control characters at all. Values may be text
		// with tabs and line breaks, but nothing that rewrites a terminal
		// or a log line.
		if hasControl(p.Key) || hasControlExceptSpace(p.Value) {
			return Deny("", "user_property_invalid_chars", CodeImplementationSpecific)
		}
	}
	if n > r.maxBytes {
		return OverLimit("", "user_properties_too_large", CodePacketTooLarge, int64(n), int64(r.maxBytes))
	}
	return Verdict{}
}

func (r *userPropertyLimits) CheckConnect(c *Connect) Verdict { return r.check(c.UserProperties) }

func (r *userPropertyLimits) CheckPublish(p *Publish) Verdict { return r.check(p.Message.Props.User) }

// propertyLimits holds the MQTT 5 properties of a PUBLISH whose content
// the client chooses to the rules its topic and payload obey: the response
// topic is a topic (length, levels, characters, no wildcards, not the
// broker's '$' topics, which a responder would then publish to), the content
// type is short printable text, the correlation data is bounded.
type propertyLimits struct {
	topic          *topicLimits
	maxContentType int
	maxCorrelation int
}

func (*propertyLimits) ID() string { return "limits.properties" }

func (r *propertyLimits) CheckPublish(p *Publish) Verdict {
	pr := &p.Message.Props
	if rt := pr.ResponseTopic; rt != "" {
		if strings.HasPrefix(rt, "$") {
			return Deny("", "response_topic_reserved", CodeTopicNameInvalid)
		}
		if strings.ContainsAny(rt, "+#") {
			return Deny("", "response_topic_wildcard", CodeTopicNameInvalid)
		}
		if v := r.topic.check(rt, CodeTopicNameInvalid); v.Blocked() {
			v.Reason = "response_" + v.Reason
			return v
		}
	}
	if n := len(pr.ContentType); n > r.maxContentType {
		return OverLimit("", "content_type_too_long", CodePacketTooLarge, int64(n), int64(r.maxContentType))
	}
	if hasControl(pr.ContentType) {
		return Deny("", "content_type_invalid_chars", CodePayloadFormatInvalid)
	}
	if n := len(pr.CorrelationData); n > r.maxCorrelation {
		return OverLimit("", "correlation_data_too_large", CodePacketTooLarge, int64(n), int64(r.maxCorrelation))
	}
	return Verdict{}
}

// hasControlExceptSpace is hasControl allowing tab, line feed and carriage
// return.
func hasControlExceptSpace(s string) bool {
	return hasControlFrom(s, func(c byte) bool { return c == '\t' || c == '\n' || c == '\r' })
}

// hasControl reports C0 and C1 control characters, DEL and invalid UTF-8.
func hasControl(s string) bool { return hasControlFrom(s, nil) }

// hasControlFrom is hasControl, except for the ASCII bytes allow accepts.
func hasControlFrom(s string, allow func(byte) bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && (allow == nil || !allow(c)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r >= 0x80 && r < 0xa0 {
			return true
		}
		i += size
	}
	return false
}
