package apps

import (
	"reflect"
	"testing"
)

func TestEvaluate(t *testing.T) {
	rules := []Rule{
		{Apps: []Grant{{App: "slack"}}},
		{Department: "Engineering", Apps: []Grant{{App: "github", Groups: []string{"eng"}}, {App: "linear"}}},
		{Department: "engineering", Role: "Staff Engineer", Apps: []Grant{{App: "github", Groups: []string{"admins", "eng"}}}},
		{MemberType: "contractor", Apps: []Grant{{App: "github", Groups: []string{"contractors"}}}},
		{Department: "Sales", Apps: []Grant{{App: "salesforce"}}},
	}
	cases := []struct {
		name string
		s    Subject
		want []Grant
	}{
		{"everyone gets slack", Subject{Departments: []string{"Finance"}}, []Grant{{App: "slack"}}},
		{"engineering", Subject{Departments: []string{"Engineering"}, Role: "Engineer", MemberType: "full_time"},
			[]Grant{{App: "github", Groups: []string{"eng"}}, {App: "linear"}, {App: "slack"}}},
		{"staff engineer union of groups", Subject{Departments: []string{" ENGINEERING "}, Role: "staff engineer"},
			[]Grant{{App: "github", Groups: []string{"admins", "eng"}}, {App: "linear"}, {App: "slack"}}},
		{"two departments", Subject{Departments: []string{"Sales", "Engineering"}},
			[]Grant{{App: "github", Groups: []string{"eng"}}, {App: "linear"}, {App: "salesforce"}, {App: "slack"}}},
		{"contractor", Subject{MemberType: "Contractor"}, []Grant{{App: "github", Groups: []string{"contractors"}}, {App: "slack"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Evaluate(rules, tc.s); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if got := Evaluate(nil, Subject{}); len(got) != 0 {
		t.Fatalf("no rules = %v", got)
	}
}

func TestRuleValidate(t *testing.T) {
	if err := (Rule{}).Validate(); err == nil {
		t.Fatal("empty rule accepted")
	}
	if err := (Rule{Apps: []Grant{{App: " "}}}).Validate(); err == nil {
		t.Fatal("blank app accepted")
	}
	if err := (Rule{Department: "x", Apps: []Grant{{App: "a"}}}).Validate(); err != nil {
		t.Fatal(err)
	}
}
