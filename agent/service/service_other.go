//go:build !linux && !darwin && !windows

package service

import ks "github.com/kardianos/service"

const serviceName = "lanyard-agent"

func options() ks.KeyValue { return ks.KeyValue{} }

func dependencies() []string { return nil }
