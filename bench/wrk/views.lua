-- wrk: POST /stories/{id}/views, one view a request; users' tokens and story ids from the
-- files named by WRK_TOKENS and WRK_STORIES (one a line); prints a JSON summary line.
local tokens, stories = {}, {}
for line in io.lines(os.getenv("WRK_TOKENS")) do tokens[#tokens + 1] = line end
for line in io.lines(os.getenv("WRK_STORIES")) do stories[#stories + 1] = line end
local counter = 0

function setup(thread)
  thread:set("offset", math.random(1, 1000000))
end

request = function()
  counter = counter + 1
  local i = counter + (offset or 0)
  local token = tokens[(i % #tokens) + 1]
  local story = stories[((i * 7919) % #stories) + 1]
  return wrk.format("POST", "/stories/" .. story .. "/views",
                    {["Authorization"] = "Bearer " .. token}, nil)
end

done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
