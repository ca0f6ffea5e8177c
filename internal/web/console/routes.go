package console

import (
	"net/http"
)

func (c *Console) routes() {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", c.ui.Static())
	in := http.NewServeMux()
	c.ui.LoginRoutes(c.am, mux, in)
	in.HandleFunc("GET /{$}", c.dashboard)
	in.HandleFunc("GET /month.csv", c.monthCSV)

	in.HandleFunc("GET /products", c.products)
	in.HandleFunc("GET /products/new", c.newProduct)
	in.HandleFunc("POST /products/new", c.addProduct)
	in.HandleFunc("GET /products/{id}", c.product)
	in.HandleFunc("POST /products/{id}/edit", c.editProduct)
	in.HandleFunc("POST /products/{id}/test", c.testProduct)
	in.HandleFunc("POST /products/{id}/deactivate", c.setActive(false))
	in.HandleFunc("POST /products/{id}/reactivate", c.setActive(true))
	in.HandleFunc("POST /products/{id}/remove", c.removeProduct)

	in.HandleFunc("GET /journal", c.journal)
	in.HandleFunc("GET /alerts", c.alerts)

	in.HandleFunc("GET /reports", c.reports)
	in.HandleFunc("POST /reports/generate", c.generateReport)
	in.HandleFunc("GET /reports/{id}/bundle", c.download(false))
	in.HandleFunc("GET /reports/{id}/plain", c.download(true))
	in.HandleFunc("POST /reports/{id}/resend", c.resendReport)
	in.HandleFunc("POST /reports/{id}/verify", c.verifyReport)

	in.HandleFunc("GET /customers", c.customers)
	in.HandleFunc("POST /customers/add", c.addCustomer)
	in.HandleFunc("POST /customers/{id}/remove", c.removeCustomer)

	in.HandleFunc("GET /licences", c.licences)
	in.HandleFunc("POST /licences/set", c.setLicence)

	in.HandleFunc("GET /registration", c.registration)
	in.HandleFunc("POST /registration", c.register)
	in.HandleFunc("GET /settings", c.settings)
	in.HandleFunc("GET /audit", c.audit)

	in.HandleFunc("GET /account", c.account)
	in.HandleFunc("POST /account/password", c.changePassword)
	in.HandleFunc("POST /account/tokens", c.createToken)
	in.HandleFunc("POST /account/tokens/{id}/revoke", c.revokeToken)

	in.HandleFunc("/", c.ui.NotFound)
	mux.Handle("/", c.am.RequirePage(in))
	c.mux = mux
}
