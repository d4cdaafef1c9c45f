# Reference vectors from the R package surveillance (Debian r-cran-surveillance)
# for `snow lab detect`: deterministic series, earsC for C1/C2/C3 (alpha 0.001)
# and C3 with alpha 0.025, written in docs/detection-algorithms.md §3's format.
# usage: Rscript interop-surveillance.R OUT_DIR
suppressMessages(library(surveillance))
out <- commandArgs(trailingOnly = TRUE)[1]
set.seed(20261122)
series <- list(
  seasonal = rpois(156, 20 + 15 * sin(2 * pi * (1:156) / 52)),
  sparse   = rpois(120, 0.4),
  zeros    = c(rep(0, 40), rpois(40, 2), rep(0, 30)),
  outbreak = { x <- rpois(104, 8); x[90:93] <- x[90:93] + c(15, 30, 25, 12); x },
  short    = rpois(14, 5)
)
# ISO weeks from 2021-W01: 2021 to 2025 have 52 weeks each.
input <- NULL
ref <- NULL
fmt <- function(x) ifelse(is.na(x), "NA", sprintf("%.17g", x))
for (name in names(series)) {
  y <- series[[name]]
  n <- length(y)
  year <- 2021 + (0:(n - 1)) %/% 52
  week <- (0:(n - 1)) %% 52 + 1
  input <- rbind(input, data.frame(series = name, year = year, week = week, count = y))
  s <- sts(observed = y, start = c(2021, 1), frequency = 52)
  for (cfg in list(c("C1", 0.001, "EARS_C1"), c("C2", 0.001, "EARS_C2"),
                   c("C3", 0.001, "EARS_C3"), c("C3", 0.025, "EARS_C3_alpha0.025"))) {
    res <- earsC(s, control = list(method = cfg[1], baseline = 7, alpha = as.numeric(cfg[2])))
    t <- res@control$range
    ub <- as.vector(upperbound(res))
    al <- as.vector(alarms(res))
    ref <- rbind(ref, data.frame(algorithm = cfg[3], series = name, year = year[t], week = week[t], t = t,
                                 observed = fmt(y[t]), upperbound = fmt(ub),
                                 alarm = ifelse(is.na(al), "NA", ifelse(al, "TRUE", "FALSE"))))
  }
}
write.csv(input, file.path(out, "series.csv"), row.names = FALSE, quote = FALSE)
write.csv(ref, file.path(out, "reference.csv"), row.names = FALSE, quote = FALSE)
