package anonymize_test

import (
	"bytes"
	"fmt"

	"github.com/usagemeter/usagemeter/anonymize"
)

func Example() {
	secret := bytes.Repeat([]byte{0xaa}, 80) // use LoadOrCreateSecret on the appliance
	a, err := anonymize.New(anonymize.ModeHashed, secret)
	if err != nil {
		panic(err)
	}
	line := "vm\t" + a.Name(anonymize.KindVM, "Test Using Larger Than Block-Size Key - Hash Key First")
	fmt.Println(line)
	fmt.Println(anonymize.Reverse(line, a.Map()))
	// Output:
	// vm	aa4ae5e15272d00e95705637ce8a3b55ed402112
	// vm	Test Using Larger Than Block-Size Key - Hash Key First
}
