package service

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestConfigPerOS(t *testing.T) {
	c := Config("/usr/bin/lanyard-agent")
	if len(c.Arguments) != 1 || c.Arguments[0] != "run" {
		t.Fatalf("Arguments = %v", c.Arguments)
	}
	if got := Config("", "--config", "/opt/agent.json").Arguments; strings.Join(got, " ") != "run --config /opt/agent.json" {
		t.Fatalf("Arguments with a config = %v", got)
	}
	switch runtime.GOOS {
	case "linux":
		unit, _ := c.Option["SystemdScript"].(string)
		for _, want := range []string{"Restart=always", "RestartSec=10", "ExecStart={{Path | cmdEscape}}{{range Arguments}}", "UMask=0077"} {
			if !strings.Contains(unit, want) {
				t.Errorf("unit lacks %q", want)
			}
		}
		if strings.Contains(unit, "{{.Path") || strings.Contains(unit, "{{.Description") || strings.Contains(unit, "RestartSec=120") {
			t.Error("unit uses text/template syntax or kardianos' RestartSec=120")
		}
		if c.Name != "lanyard-agent" {
			t.Errorf("Name = %q", c.Name)
		}
	case "darwin":
		if c.Option["RunAtLoad"] != true || c.Option["KeepAlive"] != true || c.Name != "com.lanyard.agent" {
			t.Errorf("launchd options %v", c.Option)
		}
	case "windows":
		if c.Option["OnFailure"] != "restart" {
			t.Errorf("windows options %v", c.Option)
		}
	}
}

func TestProgramStartStop(t *testing.T) {
	stopped := make(chan struct{})
	p := &program{run: func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return ctx.Err()
	}}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not observe cancellation")
	}
	if p.err != nil && !errors.Is(p.err, context.Canceled) {
		t.Fatalf("err = %v", p.err)
	}
}
