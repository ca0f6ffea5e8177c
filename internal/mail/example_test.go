package mail_test

import (
	"context"
	"fmt"
	"time"

	"github.com/usagemeter/usagemeter/internal/config"
	"github.com/usagemeter/usagemeter/internal/mail"
	"github.com/usagemeter/usagemeter/internal/smtptest"
)

// A Sender configured for STARTTLS and AUTH LOGIN, delivering to the test
// server, which trusts nothing but its own certificate.
func ExampleSender_Send() {
	srv, err := smtptest.New(smtptest.Options{STARTTLS: true, Username: "meter", Password: "secret", AuthRequired: true})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	sender, err := mail.NewSender(mail.Config{
		Host: srv.Host(), Port: srv.Port(),
		TLS: mail.TLSStartTLS, Auth: mail.AuthLogin,
		Username: "meter", Password: config.Secret("secret"),
		From:    "usagemeter <meter@provider.example>",
		RootCAs: srv.CertPool(),
	}, nil)
	if err != nil {
		panic(err)
	}
	err = sender.Send(context.Background(), mail.Message{
		MessageID: mail.MessageID(17, "meter.provider.example"),
		To:        []string{"ops@provider.example"},
		Subject:   "Collection recovered: vcenter-1",
		Text:      "Collection of vcenter-1 works again.\n",
	})
	fmt.Println("error:", err, "permanent:", mail.IsPermanent(err))

	msgs, _ := srv.WaitFor(1, 5*time.Second)
	fmt.Println(msgs[0].From, msgs[0].To, "TLS:", msgs[0].TLS, "AUTH:", msgs[0].AuthMechanism)
	// Output:
	// error: <nil> permanent: false
	// meter@provider.example [ops@provider.example] TLS: true AUTH: LOGIN
}
