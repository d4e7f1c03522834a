package domain

import "strings"

// Identity sources: what a device's serial_number holds.
const (
	// IdentitySerial: the firmware (or vendor) serial number.
	IdentitySerial = "serial"
	// IdentityHardwareUUID: the machine's hardware UUID (SMBIOS system UUID, Windows
	// Win32_ComputerSystemProduct.UUID, IOPlatformUUID), upper case, for a machine whose
	// firmware has no usable serial. Commands then carry it as their target serial.
	IdentityHardwareUUID = "hardware_uuid"
)

// ReviewNoFirmwareSerial is the review reason of a device identified by its hardware UUID.
const ReviewNoFirmwareSerial = "no firmware serial: identified by hardware UUID"

// junkSerials are placeholder values firmware vendors leave in DMI/SMBIOS. The agent
// (agent/inventory.CleanSerial) filters the same list and then reports an empty serial;
// the two must agree, because the agent accepts a command addressed to its hardware UUID
// only when it has no serial of its own.
var junkSerials = map[string]bool{
	"": true, "0": true, "none": true, "default string": true, "to be filled by o.e.m.": true,
	"system serial number": true, "not specified": true, "not applicable": true, "n/a": true,
	"0123456789": true, "serial number": true, "chassis serial number": true, "123456789": true,
	"00000000": true, "oem": true, "invalid": true,
}

// CleanSerial returns a reported serial number normalized (trimmed, upper case), or ""
// when it is a firmware placeholder ("To be filled by O.E.M.", "Default string", all
// zeros, all F...) or not a valid serial at all. Every server path that takes a serial
// from a device (agent enrollment and reports) goes through it.
func CleanSerial(s string) string {
	s = strings.TrimSpace(strings.Trim(s, "\x00"))
	if junkSerials[strings.ToLower(s)] || strings.Trim(s, "0 ") == "" || strings.Trim(s, "F") == "" {
		return ""
	}
	n, err := NormalizeSerial(s)
	if err != nil {
		return ""
	}
	return n
}

// CleanHardwareUUID returns a reported hardware UUID upper case, or "" when it cannot
// identify one machine: empty, all zeros or all F (firmware that never set it), or the
// well-known placeholder some boards ship with, which thousands of machines share.
func CleanHardwareUUID(s string) string {
	s = strings.ToUpper(strings.TrimSpace(strings.Trim(s, "\x00")))
	digits := strings.ReplaceAll(s, "-", "")
	if digits == "" || strings.Trim(digits, "0") == "" || strings.Trim(digits, "F") == "" ||
		s == "03000200-0400-0500-0006-000700080009" {
		return ""
	}
	n, err := NormalizeSerial(s)
	if err != nil {
		return ""
	}
	return n
}

// IdentifyDevice picks what a machine is known by: its serial when the firmware has a
// usable one, else its hardware UUID; key is "" when it has neither.
func IdentifyDevice(serial, hardwareUUID string) (key, source string) {
	if s := CleanSerial(serial); s != "" {
		return s, IdentitySerial
	}
	if u := CleanHardwareUUID(hardwareUUID); u != "" {
		return u, IdentityHardwareUUID
	}
	return "", ""
}
