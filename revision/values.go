package revision

import "github.com/revkit/revkit"

// RevisionValueKeys are the istiod chart's top-level values that belong to
// one revision and are never carried from another revision's release:
// its name and the tags its release renders (a tag must have one owner).
var RevisionValueKeys = []string{"revision", "revisionTags"}

// ValueChange is one chart default that differs between two charts,
// under its dotted key ("pilot.resources.requests.cpu").
type ValueChange struct {
	Key string
	// Action is create (a new default), delete (gone from the new chart)
	// or update.
	Action revkit.Action
	// Old and New are the defaults, as JSON; "" when absent.
	Old, New string
}
