package client

import "os"

func pid() int { return os.Getpid() }
