package console

import (
	"net/http"
	"net/url"

	"github.com/lanyardhq/lanyard/controlplane/api"
	"github.com/lanyardhq/lanyard/controlplane/domain"
	"github.com/lanyardhq/lanyard/controlplane/lifecycle"
	"github.com/lanyardhq/lanyard/controlplane/store"
)

// Warehouse, retrievals and orders: where stored devices are, laptops on their way back
// from people who left, and devices bought for people who are starting. Each list has
// the state actions its API offers.

func warehousePages() []page {
	return []page{{Pattern: "GET /warehouse", Handler: warehousePage}}
}

func warehouseActions() []action {
	toWarehouse := fixed("/warehouse")
	tracking := func(c *Console, r *http.Request, rq *request) (any, error) {
		return map[string]string{"tracking_number": form(r, "tracking_number")}, nil
	}
	return []action{
		{Name: "create warehouse", Form: "POST /warehouse", API: "POST /api/v1/warehouses",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				if form(r, "name") == "" {
					return nil, badRequest("Name the storage location.")
				}
				return map[string]any{"name": form(r, "name"), "address": domain.Address{Line1: form(r, "line1"), City: form(r, "city"),
					State: form(r, "state"), PostalCode: form(r, "postal_code"), Country: form(r, "country")}}, nil
			}, Sample: map[string]string{"name": "Main office", "city": "Austin", "country": "US"}, Done: back(toWarehouse, "Storage location created.")},
		{Name: "take device into warehouse", Form: "POST /warehouse/{id}/intake", API: "POST /api/v1/warehouses/{id}/intake",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				dev, err := c.resolveDevice(r, rq, form(r, "serial"))
				if err != nil {
					return nil, err
				}
				return map[string]any{"device_id": dev, "warehouse_id": r.PathValue("id"), "condition": form(r, "condition")}, nil
			}, Sample: map[string]string{"serial": "NO-SUCH-SERIAL", "condition": "good"}, Done: back(toWarehouse, "Device taken into storage.")},
		{Name: "retrieval kit sent", Form: "POST /retrievals/{id}/kit-sent", API: "POST /api/v1/retrievals/{id}/kit-sent",
			Body: tracking, Sample: map[string]string{"tracking_number": "1Z999"}, Done: back(toWarehouse, "Return kit recorded as sent.")},
		{Name: "retrieval in transit", Form: "POST /retrievals/{id}/in-transit", API: "POST /api/v1/retrievals/{id}/in-transit",
			Body: tracking, Sample: map[string]string{"tracking_number": "1Z998"}, Done: back(toWarehouse, "Return recorded as on its way.")},
		{Name: "receive retrieval", Form: "POST /retrievals/{id}/receive", API: "POST /api/v1/retrievals/{id}/receive",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				return lifecycle.IntakeInput{WarehouseID: form(r, "warehouse_id"), Condition: form(r, "condition")}, nil
			}, Sample: map[string]string{"condition": "good"}, Done: back(toWarehouse, "Device received.")},
		{Name: "cancel retrieval", Form: "POST /retrievals/{id}/cancel", API: "POST /api/v1/retrievals/{id}/cancel",
			Done: back(toWarehouse, "Retrieval cancelled.")},
		{Name: "order shipped", Form: "POST /orders/{id}/ship", API: "POST /api/v1/procurement/orders/{id}/ship",
			Body: tracking, Sample: map[string]string{"tracking_number": "1Z997"}, Done: back(toWarehouse, "Order recorded as shipped.")},
		{Name: "order delivered", Form: "POST /orders/{id}/deliver", API: "POST /api/v1/procurement/orders/{id}/deliver",
			Body: func(c *Console, r *http.Request, rq *request) (any, error) {
				if form(r, "serial_number") == "" {
					return nil, badRequest("Type the serial number of the delivered device.")
				}
				return lifecycle.DeliveryInput{SerialNumber: form(r, "serial_number"), Platform: domain.Platform(form(r, "platform"))}, nil
			}, Sample: map[string]string{"serial_number": "C02NEW", "platform": "macos"}, Done: back(toWarehouse, "Order delivered: the device is in stock.")},
	}
}

// resolveDevice turns a serial number typed in a form into a device id.
func (c *Console) resolveDevice(r *http.Request, rq *request, serial string) (string, error) {
	if serial == "" {
		return "", badRequest("Type the device's serial number.")
	}
	var list api.List[domain.Device]
	if err := c.call(r, rq, "GET", "/api/v1/devices?limit=2&serial="+url.QueryEscape(serial), nil, &list); err != nil {
		return "", err
	}
	if len(list.Items) != 1 {
		// Not a serial we know: it may be a device id; the API answers either way (and
		// refuses a caller without the role before saying whether it exists).
		return serial, nil
	}
	return list.Items[0].ID, nil
}

type warehouseView struct {
	Warehouses part[api.List[store.Warehouse]]
	Stock      part[api.List[store.StockCount]]
	Retrievals part[api.List[store.Retrieval]]
	Orders     part[api.List[store.ProcurementOrder]]
	Names      map[string]string // warehouse id → name
	Filter     url.Values
	Conditions []string
	Platforms  []domain.Platform

	RetrievalStates, OrderStates []string
}

func warehousePage(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	v := warehouseView{Filter: r.URL.Query(), Names: map[string]string{}, Conditions: []string{"new", "good", "fair", "damaged"},
		Platforms:       []domain.Platform{domain.PlatformMacOS, domain.PlatformWindows, domain.PlatformLinux, domain.PlatformIOS, domain.PlatformOther},
		RetrievalStates: []string{"requested", "kit_sent", "in_transit", "received", "cancelled"}, OrderStates: []string{"ordered", "shipped", "delivered"}}
	var err error
	if v.Warehouses, err = load[api.List[store.Warehouse]](c, r, rq, "/api/v1/warehouses"); err != nil {
		return err
	}
	for _, wh := range v.Warehouses.Data.Items {
		v.Names[wh.ID] = wh.Name
	}
	if v.Warehouses.Refused == "" {
		if v.Stock, err = load[api.List[store.StockCount]](c, r, rq, "/api/v1/warehouse-stock"); err != nil {
			return err
		}
	}
	rq2 := url.Values{"limit": {"100"}}
	if s := v.Filter.Get("retrieval_state"); s != "" {
		rq2.Set("state", s)
	}
	if v.Retrievals, err = load[api.List[store.Retrieval]](c, r, rq, "/api/v1/retrievals?"+rq2.Encode()); err != nil {
		return err
	}
	oq := url.Values{"limit": {"100"}}
	if s := v.Filter.Get("order_state"); s != "" {
		oq.Set("state", s)
	}
	if v.Orders, err = load[api.List[store.ProcurementOrder]](c, r, rq, "/api/v1/procurement/orders?"+oq.Encode()); err != nil {
		return err
	}
	return c.render(w, rq, http.StatusOK, "warehouse", "", "Warehouse, retrievals and orders", "warehouse", v)
}
