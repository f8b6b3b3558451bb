package mqtt

import "strings"

// SharePrefix begins a shared subscription's topic filter: $share/{ShareName}/{filter}.
const SharePrefix = "$share/"

// ValidTopicName checks a topic name as a PUBLISH carries it: at least one character
// [MQTT-4.7.3-1], no wildcard characters [MQTT-3.3.2-2] [MQTT-4.7.0-1], no U+0000
// [MQTT-4.7.3-2], at most 65535 bytes [MQTT-4.7.3-3]. The error carries TopicNameInvalid.
func ValidTopicName(name string) error {
	if name == "" {
		return &Error{Code: TopicNameInvalid, Reason: "empty topic name"}
	}
	if len(name) > 65535 {
		return &Error{Code: TopicNameInvalid, Reason: "topic name longer than 65535 bytes"}
	}
	if strings.ContainsAny(name, "+#\x00") {
		return &Error{Code: TopicNameInvalid, Reason: "topic name holds a wildcard or U+0000"}
	}
	return nil
}

// ValidTopicFilter checks a topic filter as SUBSCRIBE and UNSUBSCRIBE carry it,
// including the shared form $share/{ShareName}/{filter}. The error carries
// TopicFilterInvalid.
func ValidTopicFilter(filter string) error {
	if group, f, ok := SplitShared(filter); ok {
		if group == "" || strings.ContainsAny(group, "+#") { // [MQTT-4.8.2-1] [MQTT-4.8.2-2]
			return &Error{Code: TopicFilterInvalid, Reason: "invalid share name"}
		}
		return validFilter(f)
	}
	return validFilter(filter)
}

func validFilter(filter string) error {
	if filter == "" { // [MQTT-4.7.3-1]
		return &Error{Code: TopicFilterInvalid, Reason: "empty topic filter"}
	}
	if len(filter) > 65535 {
		return &Error{Code: TopicFilterInvalid, Reason: "topic filter longer than 65535 bytes"}
	}
	for i := 0; i < len(filter); i++ {
		switch filter[i] {
		case '#': // [MQTT-4.7.1-2] the last character, alone in its level
			if i != len(filter)-1 || (i > 0 && filter[i-1] != '/') {
				return &Error{Code: TopicFilterInvalid, Reason: "'#' is not alone at the end of the filter"}
			}
		case '+': // [MQTT-4.7.1-3] alone in its level
			if (i > 0 && filter[i-1] != '/') || (i < len(filter)-1 && filter[i+1] != '/') {
				return &Error{Code: TopicFilterInvalid, Reason: "'+' does not fill its level"}
			}
		case 0: // [MQTT-4.7.3-2]
			return &Error{Code: TopicFilterInvalid, Reason: "topic filter holds U+0000"}
		}
	}
	return nil
}

// SplitShared splits a shared subscription's filter $share/{ShareName}/{filter} into
// its share name and filter. ok is false when filter is not in the shared form; the
// parts are not validated (see ValidTopicFilter).
func SplitShared(filter string) (group, topicFilter string, ok bool) {
	rest, found := strings.CutPrefix(filter, SharePrefix)
	if !found {
		return "", "", false
	}
	group, topicFilter, found = strings.Cut(rest, "/")
	if !found {
		return rest, "", true
	}
	return group, topicFilter, true
}

// HasWildcard reports whether filter holds '+' or '#'.
func HasWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }

// Match reports whether topic name matches topic filter. The filter must be valid and
// not in the shared form (match its filter part instead). Filters that begin with a
// wildcard do not match topic names that begin with '$' [MQTT-4.7.2-1].
// Match does not allocate.
func Match(filter, topic string) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	fi, ti := 0, 0
	for {
		// Take one level of each.
		fe := strings.IndexByte(filter[fi:], '/')
		var flevel string
		if fe < 0 {
			flevel = filter[fi:]
		} else {
			flevel = filter[fi : fi+fe]
		}
		if flevel == "#" { // matches the parent level and everything below [MQTT-4.7.1-2]
			return true
		}
		te := strings.IndexByte(topic[ti:], '/')
		var tlevel string
		if te < 0 {
			tlevel = topic[ti:]
		} else {
			tlevel = topic[ti : ti+te]
		}
		if flevel != "+" && flevel != tlevel {
			return false
		}
		switch {
		case fe < 0 && te < 0:
			return true
		case fe < 0:
			return false
		case te < 0:
			// The topic has no more levels; only a trailing "#" can still match.
			return filter[fi+fe+1:] == "#"
		}
		fi += fe + 1
		ti += te + 1
	}
}
