// Package report turns stored usage spans into the monthly usage report: aggregation per metering rule, customer rules, anonymisation, the bundle, PGP encryption and signing.
package report
