package report

// The golden fixture meters vcenter, srm and horizon: their kinds register
// themselves through collectors/all, which gives the report's product
// column its names. A kind the fixture meters before its collector exists
// would be declared here, for the report tests only.
import _ "github.com/usagemeter/usagemeter/collectors/all"
