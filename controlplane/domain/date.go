package domain

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"
)

// Date is a calendar date without time zone (HR start and termination dates).
type Date struct{ time.Time }

const dateLayout = "2006-01-02"

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return Date{}, fmt.Errorf("parse date %q: want YYYY-MM-DD", s)
	}
	return Date{t}, nil
}

// NewDate builds a Date.
func NewDate(y int, m time.Month, d int) Date { return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)} }

func (d Date) String() string { return d.Format(dateLayout) }

// MarshalJSON writes YYYY-MM-DD.
func (d Date) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads YYYY-MM-DD.
func (d *Date) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Value stores the date as TEXT on both dialects.
func (d Date) Value() (driver.Value, error) { return d.String(), nil }

// Scan reads TEXT, or a time from drivers that convert DATE columns.
func (d *Date) Scan(v any) error {
	switch x := v.(type) {
	case string:
		p, err := ParseDate(x)
		*d = p
		return err
	case []byte:
		p, err := ParseDate(string(x))
		*d = p
		return err
	case time.Time:
		*d = Date{time.Date(x.Year(), x.Month(), x.Day(), 0, 0, 0, 0, time.UTC)}
		return nil
	}
	return fmt.Errorf("scan date from %T", v)
}

// At returns the instant of hour:00 on this date in loc.
func (d Date) At(hour int, loc *time.Location) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), hour, 0, 0, 0, loc)
}
