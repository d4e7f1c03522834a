package apple_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/lanyardhq/lanyard/controlplane/mdm/apple"
)

// nanomdm logs every command report at info, and a Mac reports Idle on every
// check-in: those go to debug; real command results stay at info.
func TestNanoLoggerIdleIsDebug(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		kv    []any
		want  string // "" means nothing logged
	}{
		{slog.LevelInfo, []any{"status", "Idle"}, ""},
		{slog.LevelInfo, []any{"status", "Acknowledged", "command_uuid", "c1"}, "level=INFO msg=nanomdm id=udid-1 status=Acknowledged command_uuid=c1"},
		{slog.LevelInfo, []any{"msg", "TokenUpdate"}, "level=INFO msg=TokenUpdate id=udid-1"},
		{slog.LevelDebug, []any{"status", "Idle"}, "level=DEBUG msg=nanomdm id=udid-1 status=Idle"},
	} {
		var buf bytes.Buffer
		l := apple.NanoLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}})))
		l.With("id", "udid-1").Info(tc.kv...)
		got := strings.TrimSpace(buf.String())
		if tc.want == "" && got != "" || tc.want != "" && !strings.HasPrefix(got, tc.want) {
			t.Errorf("handler at %s, Info(%v): got %q, want %q", tc.level, tc.kv, got, tc.want)
		}
	}
}
