// Package report turns stored usage spans into the monthly usage report:
// aggregation per metering rule, customer rules, anonymisation, the bundle,
// PGP encryption and signing, and delivery.
//
// # Figures
//
// [Rules] is METERING.md as a table: each line maps a stored metric (and
// optionally product kinds and editions) to an aggregation kind (average,
// non-unique count, monthly maximum, unique count) and to the Product and
// Metric columns of Monthly_Usage.tsv. Each kind is one SQL query over the
// month's spans in internal/store (aggregate.go); Go only formats rows.
// The month and its hours are taken in the report time zone
// (report.timezone), so March in Europe/Berlin has 743 hours.
//
// A rule may also ask for a billing mode (Rule.Mode): the Aria products
// store theirs in each hour's edition (collectors.AriaEdition), so an
// hour billed as a Flex add-on takes the joined vRAM rule (the monitored
// VMs' capped billed vRAM from their vCenter, joined by instance UUID or by
// MoRef) and a standalone hour the non-unique count, and a change of mode
// splits the month at its hour.
//
// Usage whose dims say not_reportable, or whose licence key is marked
// perpetual or demo (`usagemeter license set`), is not in the figures; it
// is counted under "excluded" in manifest.json. Hours of the month without
// a done collection run are counted per product under "products".
//
// # Bundle
//
// Monthly_Usage.tsv, customers/<label>_Monthly_Usage.tsv (one per customer,
// the label anonymised; "No Customer Label" for usage no rule matches; in
// redacted mode all labelled customers share REDACTED_Monthly_Usage.tsv),
// VM_History.tsv and Cluster_History.tsv (the month's spans, clipped),
// Hourly_Usage.tsv (totals per product, metric and edition for every hour)
// and manifest.json (appliance, contract and programme, month, time zone,
// hours, version, rules version and assumptions, anonymisation mode, gaps,
// exclusions, SHA-256 of every file and of the figures). Every name is
// anonymised. The .tar.gz is deterministic (sorted entries, fixed times):
// the same data gives the same bytes.
//
// # Versions and files
//
// [Generator.Generate] stores a new version only when the figures changed
// (figures_sha256); older versions are kept. Each version is kept in
// data_dir/reports as usage-YYYY-MM-vN.tar.gz (the plain, anonymised bundle:
// `usagemeter anonymize reverse` reads it with the local reverse map) and,
// when recipient keys are configured, usage-YYYY-MM-vN.tar.gz.gpg (encrypted
// to them and signed with the appliance key): the file that is delivered.
//
// # Delivery
//
// [Channel]s: [MailChannel] queues the encrypted bundle in the outbox (the
// outbox worker sends it, retries and alerts), in the same transaction as
// the channel's status and keyed by report version and channel, so that a
// retry after a crash finds it; [UploadChannel] POSTs it over HTTPS with a
// bearer token, retrying. The status of each channel is kept in
// reports.channels, the e-mail one following its mail in the outbox (sent,
// or failed once refused for good); [Generator.RunMonthly] is the monthly
// job and is idempotent, also over a bundle file a crash left without its
// row; [Generator.RetryUndelivered] retries failed channels.
package report
