-- GET with the admin key (lists, stats); the path comes from the URL given to wrk.
package.path = package.path .. ";bench/?.lua"
local report = require("wrk_report")
wrk.headers["X-API-Key"] = os.getenv("BENCH_API_KEY")
done = report.done
