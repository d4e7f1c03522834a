package server

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// DemoOrgName names the organization `make run` creates.
const DemoOrgName = "Demo Co"

// SeedDemo makes sure the demo organization exists with some stock and its admins
// (demoUsers), connects it to the fake Justworks, and mints a fresh owner token for the
// demo owner (the plaintext is returned once, never
// stored). It runs on every demo start, so each step is idempotent.
func (s *Server) SeedDemo(ctx context.Context) (domain.Org, string, error) {
	ctx = domain.WithActor(ctx, domain.Actor{ID: "system:demo"})
	var org domain.Org
	orgs, err := s.DB.ListOrgs(ctx)
	if err != nil {
		return org, "", err
	}
	for _, o := range orgs {
		if o.Name == DemoOrgName {
			org = o
		}
	}
	if org.ID == "" {
		org = domain.Org{Name: DemoOrgName, Plan: domain.PlanPro, TimeZone: "America/New_York",
			Settings: domain.OrgSettings{OffboardingHour: 17, OnboardingLeadDays: 7}}
		err := s.DB.InTx(ctx, func(tx *sql.Tx) error {
			if err := store.CreateOrg(ctx, tx, &org); err != nil {
				return err
			}
			stock := []domain.Device{
				{SerialNumber: "C02DEMO0001", Vendor: "apple", Model: "MacBook Pro 14 (M3)", Platform: domain.PlatformMacOS, EquipmentType: "laptop"},
				{SerialNumber: "C02DEMO0002", Vendor: "apple", Model: "MacBook Air 13 (M2)", Platform: domain.PlatformMacOS, EquipmentType: "laptop"},
				{SerialNumber: "PF3DEMO01", Vendor: "lenovo", Model: "ThinkPad T14 Gen 4", Platform: domain.PlatformWindows, EquipmentType: "laptop"},
				{SerialNumber: "PF3DEMO02", Vendor: "lenovo", Model: "ThinkPad X1 Carbon", Platform: domain.PlatformLinux, EquipmentType: "laptop"},
				{SerialNumber: "CN0DEMO001", Vendor: "dell", Model: "U2723QE", Platform: domain.PlatformOther, EquipmentType: "monitor"},
			}
			for i := range stock {
				stock[i].OrgID = org.ID
				if err := store.CreateDevice(ctx, tx, &stock[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return org, "", fmt.Errorf("seed demo org: %w", err)
		}
	}
	if err := s.seedHRIS(ctx, org); err != nil {
		return org, "", fmt.Errorf("seed demo org: %w", err)
	}
	owner, err := s.demoUsers(ctx, org)
	if err != nil {
		return org, "", fmt.Errorf("seed demo org: %w", err)
	}
	if err := s.seedSSO(ctx, org); err != nil {
		return org, "", fmt.Errorf("seed demo org: %w", err)
	}
	if err := s.seedDemoFleet(ctx, org); err != nil {
		return org, "", fmt.Errorf("seed demo org: %w", err)
	}
	if err := s.seedGoogle(ctx, org); err != nil {
		return org, "", fmt.Errorf("seed demo org: %w", err)
	}
	if err := s.seedNotify(ctx, org); err != nil {
		return org, "", fmt.Errorf("seed demo org: %w", err)
	}
	_, secret, err := s.DB.CreateTokenFor(ctx, store.NewToken{OrgID: org.ID, Name: "make run owner", Role: domain.RoleOwner, UserID: owner.ID})
	if err != nil {
		return org, "", err
	}
	return org, secret, nil
}
