package apps

import (
	"fmt"
	"slices"
	"strings"
)

// Rule maps HR attributes to applications. Empty match fields match
// anything; non-empty fields must all match (case-insensitively). A rule
// with no match fields applies to everyone ("all staff get Slack").
//
// Example: {Department: "Engineering", Apps: [{App: "github"}, {App: "linear"}]}.
type Rule struct {
	ID         string  `json:"id,omitempty"`
	Department string  `json:"department,omitempty"`
	Role       string  `json:"role,omitempty"`
	MemberType string  `json:"member_type,omitempty"`
	Apps       []Grant `json:"apps"`
}

// Grant is one application and the groups on it.
type Grant struct {
	App    string   `json:"app"`
	Groups []string `json:"groups,omitempty"`
}

// Subject is the HR view of an employee that rules match on.
type Subject struct {
	Departments []string // Justworks may report several
	Role        string
	MemberType  string
}

// Validate reports a rule that can never be applied.
func (r Rule) Validate() error {
	if len(r.Apps) == 0 {
		return fmt.Errorf("rule grants no apps")
	}
	for i, g := range r.Apps {
		if strings.TrimSpace(g.App) == "" {
			return fmt.Errorf("apps[%d]: app name is empty", i)
		}
	}
	return nil
}

// Matches reports whether the rule applies to s.
func (r Rule) Matches(s Subject) bool {
	if r.Department != "" && !slices.ContainsFunc(s.Departments, func(d string) bool {
		return strings.EqualFold(strings.TrimSpace(d), strings.TrimSpace(r.Department))
	}) {
		return false
	}
	if r.Role != "" && !strings.EqualFold(strings.TrimSpace(r.Role), strings.TrimSpace(s.Role)) {
		return false
	}
	if r.MemberType != "" && !strings.EqualFold(strings.TrimSpace(r.MemberType), strings.TrimSpace(s.MemberType)) {
		return false
	}
	return true
}

// Evaluate returns the applications s should have under rules: one Grant per
// app (sorted by app name) with the union of the groups of every matching
// rule (sorted, deduplicated).
func Evaluate(rules []Rule, s Subject) []Grant {
	groups := map[string]map[string]bool{}
	for _, r := range rules {
		if !r.Matches(s) {
			continue
		}
		for _, g := range r.Apps {
			app := strings.TrimSpace(g.App)
			if groups[app] == nil {
				groups[app] = map[string]bool{}
			}
			for _, gr := range g.Groups {
				groups[app][gr] = true
			}
		}
	}
	out := make([]Grant, 0, len(groups))
	for app, gs := range groups {
		g := Grant{App: app}
		for gr := range gs {
			g.Groups = append(g.Groups, gr)
		}
		slices.Sort(g.Groups)
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Grant) int { return strings.Compare(a.App, b.App) })
	return out
}
