package domain

import "fmt"

// Plan is what an organization pays for; each plan includes the ones below it.
type Plan string

const (
	PlanHR         Plan = "hr"
	PlanEssentials Plan = "essentials"
	PlanPro        Plan = "pro"
)

var planRank = map[Plan]int{PlanHR: 1, PlanEssentials: 2, PlanPro: 3}

// Valid reports whether p is a known plan.
func (p Plan) Valid() bool { return planRank[p] > 0 }

// Includes reports whether p is at least q.
func (p Plan) Includes(q Plan) bool { return planRank[p] >= planRank[q] && planRank[q] > 0 }

// ParsePlan validates a plan name.
func ParsePlan(s string) (Plan, error) {
	if p := Plan(s); p.Valid() {
		return p, nil
	}
	return "", fmt.Errorf("unknown plan %q (valid: hr, essentials, pro)", s)
}

// Feature is a capability gated by plan.
type Feature string

const (
	FeatureNone           Feature = ""
	FeatureHRSync         Feature = "hr_sync"
	FeatureProcurement    Feature = "procurement"
	FeatureAssets         Feature = "asset_management"
	FeatureAutomation     Feature = "automation"
	FeatureAppAccess      Feature = "app_access"
	FeatureDeviceTracking Feature = "device_tracking"
	FeatureMDM            Feature = "mdm"
	FeatureWarehousing    Feature = "warehousing"
)

var featurePlan = map[Feature]Plan{
	FeatureHRSync:         PlanHR,
	FeatureProcurement:    PlanHR,
	FeatureAssets:         PlanHR,
	FeatureAutomation:     PlanEssentials,
	FeatureAppAccess:      PlanEssentials,
	FeatureDeviceTracking: PlanPro,
	FeatureMDM:            PlanPro,
	FeatureWarehousing:    PlanPro,
}

// RequiredPlan is the lowest plan that includes f.
func (f Feature) RequiredPlan() Plan {
	if p, ok := featurePlan[f]; ok {
		return p
	}
	return PlanHR
}

// Allows reports whether plan p includes feature f.
func (p Plan) Allows(f Feature) bool {
	if f == FeatureNone {
		return true
	}
	return p.Includes(f.RequiredPlan())
}

// Role is an admin's permission level within one organization.
type Role string

const (
	RoleViewer Role = "viewer"
	RoleIT     Role = "it"
	RoleAdmin  Role = "admin"
	RoleOwner  Role = "owner"
)

var roleRank = map[Role]int{RoleViewer: 1, RoleIT: 2, RoleAdmin: 3, RoleOwner: 4}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return roleRank[r] > 0 }

// AtLeast reports whether r grants everything min grants.
func (r Role) AtLeast(min Role) bool { return roleRank[r] >= roleRank[min] && roleRank[r] > 0 }

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.Valid() {
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (valid: owner, admin, it, viewer)", s)
}
