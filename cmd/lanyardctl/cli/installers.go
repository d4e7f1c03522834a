package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

var _ = func() bool {
	extraCommands = append(extraCommands, (*app).installersCmd)
	return true
}()

type installerBuildView struct {
	ID        string    `json:"id"`
	Platform  string    `json:"platform"`
	Arch      string    `json:"arch"`
	Version   string    `json:"version"`
	FileName  string    `json:"file_name"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size_bytes"`
	SecretID  string    `json:"secret_id"`
	Signed    bool      `json:"signed"`
	CreatedAt time.Time `json:"created_at"`
}

type installerLinkView struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	Platform  string    `json:"platform"`
	Arch      string    `json:"arch"`
	Version   string    `json:"version"`
	FileName  string    `json:"file_name"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size_bytes"`
	BuildID   string    `json:"build_id"`
	SecretID  string    `json:"secret_id"`
	BundleID  string    `json:"bundle_id,omitempty"`
}

func (a *app) installersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "installers", Short: "Download agent installers with the org's enrollment config baked in"}

	platforms := &cobra.Command{
		Use: "platforms", Short: "List the platforms and architectures offered", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			var v struct {
				Version   string `json:"version"`
				Platforms []struct {
					Platform string   `json:"platform"`
					Archs    []string `json:"archs"`
				} `json:"platforms"`
				Note string `json:"note"`
			}
			if err := c.Do(ctx, http.MethodGet, "/api/v1/installers", nil, nil, &v); err != nil {
				return err
			}
			rows := make([][]string, 0, len(v.Platforms))
			for _, p := range v.Platforms {
				rows = append(rows, []string{p.Platform, strings.Join(p.Archs, ", "), v.Version})
			}
			if err := a.print(v, []string{"PLATFORM", "ARCHS", "VERSION"}, rows); err != nil {
				return err
			}
			if !a.asJSON && v.Note != "" {
				a.printf("\n%s\n", v.Note)
			}
			return nil
		}),
	}

	var limit int
	builds := &cobra.Command{
		Use: "builds", Short: "List the org's installer builds and the enrollment secret of each", Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			items, err := listAll[installerBuildView](ctx, c, "/api/v1/installers/builds", nil, limit)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, b := range items {
				rows = append(rows, []string{b.ID, b.FileName, strconv.FormatInt(b.Size, 10), b.SecretID, strconv.FormatBool(b.Signed),
					b.CreatedAt.Format(time.RFC3339)})
			}
			return a.print(items, []string{"ID", "FILE", "BYTES", "SECRET", "SIGNED", "BUILT"}, rows)
		}),
	}
	builds.Flags().IntVar(&limit, "limit", 0, "stop after this many (0: all)")

	var platform, arch, out string
	var fresh bool
	download := &cobra.Command{
		Use:   "download --platform PLATFORM [--arch ARCH]",
		Short: "Download an installer (cached, or built with a new enrollment secret) and its .sha256",
		Args:  cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			if platform == "" {
				return fmt.Errorf("--platform is required (linux-deb, linux-rpm, windows-msi or macos-pkg)")
			}
			q := url.Values{}
			if arch != "" {
				q.Set("arch", arch)
			}
			if fresh {
				q.Set("fresh", "true")
			}
			path := "/api/v1/installers/" + url.PathEscape(platform)
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			body, h, err := c.Raw(ctx, path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			got := hex.EncodeToString(sum[:])
			if want := h.Get("X-Checksum-Sha256"); want != "" && want != got {
				return fmt.Errorf("download corrupted: sha256 %s, server says %s", got, want)
			}
			name := "lanyard-agent-installer"
			if _, params, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && params["filename"] != "" {
				name = filepath.Base(params["filename"])
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			// The package holds an enrollment secret: keep it from other local users.
			file := filepath.Join(out, name)
			if err := os.WriteFile(file, body, 0o600); err != nil {
				return err
			}
			if err := os.WriteFile(file+".sha256", []byte(got+"  "+name+"\n"), 0o644); err != nil {
				return err
			}
			v := map[string]any{"file": file, "sha256": got, "size_bytes": len(body),
				"build_id": h.Get("X-Lanyard-Installer-Build"), "secret_id": h.Get("X-Lanyard-Enrollment-Secret-Id")}
			return a.printKV(v, [][2]string{{"file", file}, {"sha256", got}, {"bytes", strconv.Itoa(len(body))},
				{"build", h.Get("X-Lanyard-Installer-Build")}, {"secret", h.Get("X-Lanyard-Enrollment-Secret-Id") + "   (revoke it to retire this installer)"}})
		}),
	}
	download.Flags().StringVar(&platform, "platform", "", "linux-deb, linux-rpm, windows-msi or macos-pkg")
	download.Flags().StringVar(&arch, "arch", "", "amd64, arm64, or universal for macos-pkg")
	download.Flags().StringVar(&out, "out", ".", "directory to write the installer to")
	download.Flags().BoolVar(&fresh, "fresh", false, "build a new installer with a new enrollment secret")

	var lPlatform, lArch string
	var ttl time.Duration
	var lFresh bool
	link := &cobra.Command{
		Use:   "link --platform PLATFORM [--arch ARCH] [--ttl 168h]",
		Short: "Create an expiring public download link (for the new hire, or an MDM InstallEnterpriseApplication)",
		Args:  cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *Client, _ []string) error {
			body := map[string]any{"platform": lPlatform, "arch": lArch, "fresh": lFresh}
			if ttl > 0 {
				body["ttl_hours"] = int(ttl.Hours())
			}
			var v installerLinkView
			if err := c.Do(ctx, http.MethodPost, "/api/v1/installers/links", nil, body, &v); err != nil {
				return err
			}
			pairs := [][2]string{{"url", v.URL}, {"expires", v.ExpiresAt.Format(time.RFC3339)}, {"file", v.FileName},
				{"sha256", v.SHA256}, {"bytes", strconv.FormatInt(v.Size, 10)}, {"secret", v.SecretID}}
			if v.BundleID != "" {
				pairs = append(pairs, [2]string{"bundle id", v.BundleID})
			}
			return a.printKV(v, pairs)
		}),
	}
	link.Flags().StringVar(&lPlatform, "platform", "", "linux-deb, linux-rpm, windows-msi or macos-pkg")
	link.Flags().StringVar(&lArch, "arch", "", "amd64, arm64, or universal for macos-pkg")
	link.Flags().DurationVar(&ttl, "ttl", 0, "how long the link works (default 168h, at most 720h)")
	link.Flags().BoolVar(&lFresh, "fresh", false, "build a new installer with a new enrollment secret")

	cmd.AddCommand(platforms, builds, download, link)
	return cmd
}
