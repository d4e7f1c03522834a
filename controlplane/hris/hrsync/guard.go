package hrsync

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/hris"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Guards that end a run as failed instead of letting a misbehaving provider
// (or a mock in front of it) write junk: a listing that never ends, and a
// person who reappears under a new member id. Each fails before the page
// that shows the problem is applied, so only pages already committed stay.
var (
	// errCursorLoop: the provider handed back a cursor this listing already
	// sent (the same next_cursor forever, or a cycle A→B→A).
	errCursorLoop = errors.New("hrsync: the provider repeated a cursor; the listing would never end")
	// errPageCap: a listing needed more pages than Config.MaxPages.
	errPageCap = errors.New("hrsync: the listing exceeded the page cap")
	// errIdentityChanged: a member we do not know carries the work email or
	// work id of an employee we have under another member id, and that id is
	// gone or still active at the provider.
	errIdentityChanged = errors.New("hrsync: member id changed under the same identity")
)

// DefaultMaxPages is the page cap of one listing: 200,000 members at the
// provider's page size, far above any company Justworks serves.
const DefaultMaxPages = 2000

// cursorGuard tracks the cursors one listing has sent.
type cursorGuard struct {
	max   int
	pages int
	seen  map[string]bool
}

func newCursorGuard(max int, start string) *cursorGuard {
	g := &cursorGuard{max: max, seen: map[string]bool{}}
	if start != "" {
		g.seen[start] = true
	}
	return g
}

// reset starts over after the provider rejected a cursor: a listing read again
// from the top may legitimately hand out the cursors it handed out before. The
// page count is kept, so restarts cannot lift the cap.
func (g *cursorGuard) reset() { g.seen = map[string]bool{} }

// beforeFetch fails when the next request would exceed the cap.
func (g *cursorGuard) beforeFetch() error {
	if g.pages >= g.max {
		return fmt.Errorf("%w: %d pages read and the provider still returns a next_cursor (raise hr-sync-max-pages if the company is that large)", errPageCap, g.pages)
	}
	g.pages++
	return nil
}

// next checks a page's next_cursor and records it.
func (g *cursorGuard) next(cursor string) error {
	if cursor == "" {
		return nil
	}
	if g.seen[cursor] {
		return fmt.Errorf("%w: page %d returned next_cursor %q, which this listing already sent", errCursorLoop, g.pages, abbrev(cursor))
	}
	g.seen[cursor] = true
	return nil
}

func abbrev(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "…"
}

// checkIdentities refuses members that would become new employees although an
// employee with the same work email or work id exists under another member id.
// The old id is looked up at the provider: terminated there means a rehire
// under a new id (EDGE_CASES 4, handled by apply); gone or still active means
// the identity moved or is duplicated, and nothing of it is applied.
func (e *Engine) checkIdentities(ctx context.Context, dir hris.Directory, org domain.Org, source string, all []hris.Member) error {
	// Only members that would become employees matter: a former member we
	// never knew is ignored by apply (and may well share the email of the
	// employee relinked to its rehire).
	today := todayIn(e.now(), org.Location())
	ms := make([]hris.Member, 0, len(all))
	for _, m := range all {
		if status(m, today) != domain.StatusTerminated {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	orgID := org.ID
	ids := make([]string, 0, len(ms))
	var emails, workIDs []string
	for _, m := range ms {
		ids = append(ids, m.ExternalID)
		emails = append(emails, normEmail(m.WorkEmail))
		workIDs = append(workIDs, m.WorkID)
	}
	var known map[string]bool
	var matches []store.IdentityMatch
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		existing, err := e.db.EmployeesByExternalIDs(ctx, tx, orgID, source, ids)
		if err != nil {
			return err
		}
		known = make(map[string]bool, len(existing))
		for id := range existing {
			known[id] = true
		}
		matches, err = e.db.LiveEmployeesByIdentity(ctx, tx, orgID, source, emails, workIDs)
		return err
	})
	if err != nil {
		return fmt.Errorf("identity check: %w", err)
	}
	// Two new members of one batch sharing an identity are as wrong as one
	// sharing it with a stored employee.
	firstEmail, firstWork := map[string]string{}, map[string]string{}
	for _, m := range ms {
		if known[m.ExternalID] {
			continue
		}
		em := normEmail(m.WorkEmail)
		if prev, ok := firstEmail[em]; ok && em != "" && prev != m.ExternalID {
			return fmt.Errorf("%w: members %s and %s share the work email %s", errIdentityChanged, prev, m.ExternalID, em)
		}
		if prev, ok := firstWork[m.WorkID]; ok && m.WorkID != "" && prev != m.ExternalID {
			return fmt.Errorf("%w: members %s and %s share the work id %s", errIdentityChanged, prev, m.ExternalID, m.WorkID)
		}
		if em != "" {
			firstEmail[em] = m.ExternalID
		}
		if m.WorkID != "" {
			firstWork[m.WorkID] = m.ExternalID
		}
		for _, x := range matches {
			if x.ExternalID == m.ExternalID {
				continue
			}
			var via string
			switch {
			case em != "" && x.WorkEmail == em:
				via = "work email " + em
			case m.WorkID != "" && x.WorkID == m.WorkID:
				via = "work id " + m.WorkID
			default:
				continue
			}
			old, err := dir.GetMember(ctx, x.ExternalID)
			switch {
			case errors.Is(err, hris.ErrNotFound):
				return fmt.Errorf("%w: employee %s was member %s, which the provider no longer has; member %s now has its %s. "+
					"Nothing of it was applied; link the employee to the new id or remove it, then sync again",
					errIdentityChanged, x.EmployeeID, x.ExternalID, m.ExternalID, via)
			case err != nil:
				return err
			case old.Active:
				return fmt.Errorf("%w: members %s and %s are both active with the %s (employee %s). Nothing of it was applied; fix the duplicate in HR, then sync again",
					errIdentityChanged, x.ExternalID, m.ExternalID, via, x.EmployeeID)
			}
			// Terminated at the provider: a rehire under a new id.
		}
	}
	return nil
}
