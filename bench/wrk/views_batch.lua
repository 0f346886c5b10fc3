-- wrk: POST /views:batch; each request a line of the file named by WRK_BODIES: a user's token,
-- a tab, the JSON body; prints a JSON summary line.
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do
  local tab = line:find("\t", 1, true)
  bodies[#bodies + 1] = {line:sub(1, tab - 1), line:sub(tab + 1)}
end
local counter = 0

request = function()
  counter = counter + 1
  local pair = bodies[(counter % #bodies) + 1]
  return wrk.format("POST", "/views:batch",
                    {["Authorization"] = "Bearer " .. pair[1],
                     ["Content-Type"] = "application/json"}, pair[2])
end

done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
