# Reference vectors from the R package surveillance (Debian r-cran-surveillance)
# for `snow lab detect --algorithm farrington`: deterministic series of six
# years and more (and one too short), farringtonFlexible with index-based
# and date-based reference weeks in the configurations of docs/detection-algorithms.md
# §2.1 (FF_default, FF_b3, FF_noufaily_b3, FF_default_dates), written in §3's
# format with the diagnostics.
# usage: Rscript interop-farrington.R OUT_DIR [N_RANDOM_SERIES]
#   With N_RANDOM_SERIES, writes bench-series.csv with that many seasonal
#   series of 6 years instead, times farringtonFlexible (FF_default) over
#   all of them and writes bench-reference.csv and bench-seconds.txt.
suppressMessages(library(surveillance))
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]
fmt <- function(x) ifelse(is.na(x), "NA", sprintf("%.17g", x))
mondays <- function(n) as.Date("2015-01-05") + 7 * (0:(n - 1))   # 2015-W02 onwards
iso <- function(n) {
  d <- mondays(n)
  list(year = as.integer(format(d, "%G")), week = as.integer(format(d, "%V")))
}
configs <- list(
  FF_default = list(),
  FF_b3 = list(b = 3),
  FF_noufaily_b3 = list(b = 3, noPeriods = 10, pastWeeksNotIncluded = 26, thresholdMethod = "nbPlugin"),
  FF_default_dates = list()
)
run <- function(label, name, y, cfg) {
  n <- length(y)
  b <- if (is.null(cfg$b)) 5 else cfg$b
  w <- if (is.null(cfg$w)) 3 else cfg$w
  dates <- label == "FF_default_dates"
  # Date-based reference weeks may lie one week further back.
  first <- 52 * b + w + if (dates) 3 else 1
  if (n < first) return(NULL)
  s <- if (dates) {
    sts(observed = y, epoch = as.numeric(mondays(n)), epochAsDate = TRUE, frequency = 52)
  } else {
    sts(observed = y, start = c(2015, 2), frequency = 52)
  }
  res <- farringtonFlexible(s, control = c(list(range = first:n), cfg))
  t <- first:n
  c <- res@control
  al <- as.vector(alarms(res))
  tr <- as.vector(c$trend)
  data.frame(algorithm = label, series = name, year = iso(n)$year[t], week = iso(n)$week[t], t = t,
             observed = fmt(y[t]), upperbound = fmt(as.vector(upperbound(res))),
             alarm = ifelse(is.na(al), "NA", ifelse(al, "TRUE", "FALSE")),
             expected = fmt(as.vector(c$expected)), phi = fmt(as.vector(c$phiVector)),
             trend_used = ifelse(is.na(tr), "NA", as.character(tr)),
             trend_coef = fmt(as.vector(c$trendVector)),
             score = fmt(as.vector(c$score)), pvalue = fmt(as.vector(c$pvalue)))
}
write_input <- function(series, file) {
  input <- NULL
  for (name in names(series)) {
    y <- series[[name]]
    wk <- iso(length(y))
    input <- rbind(input, data.frame(series = name, year = wk$year, week = wk$week, count = y))
  }
  write.csv(input, file, row.names = FALSE, quote = FALSE)
}
if (length(args) >= 2) {
  k <- as.integer(args[2])
  set.seed(20261124)
  n <- 6 * 52
  series <- lapply(seq_len(k), function(i) rpois(n, (5 + 10 * runif(1)) * exp(0.6 * sin(2 * pi * (1:n) / 52 + runif(1) * 6))))
  names(series) <- sprintf("s%04d", seq_len(k))
  write_input(series, file.path(out, "bench-series.csv"))
  started <- proc.time()[["elapsed"]]
  ref <- do.call(rbind, lapply(names(series), function(nm) run("FF_default", nm, series[[nm]], list())))
  seconds <- proc.time()[["elapsed"]] - started
  write.csv(ref, file.path(out, "bench-reference.csv"), row.names = FALSE, quote = FALSE)
  writeLines(sprintf("%.3f", seconds), file.path(out, "bench-seconds.txt"))
  quit(status = 0)
}
set.seed(20261123)
n <- 6 * 52 + 20
series <- list(
  seasonal = rpois(n, 20 + 15 * sin(2 * pi * (1:n) / 52)),
  trend    = rpois(n, exp(1.2 + 0.005 * (1:n) + 0.4 * sin(2 * pi * (1:n) / 52))),
  sparse   = rpois(n, 0.4),
  zeros    = c(rep(0, 100), rpois(120, 2), rep(0, n - 220)),
  outbreak = { x <- rpois(n, 8); i <- c(120:123, 300:304); x[i] <- x[i] + c(15, 30, 25, 12, 10, 25, 40, 30, 15); x },
  long     = rpois(8 * 52, 30 + 20 * sin(2 * pi * (1:(8 * 52)) / 52)),
  short    = rpois(4 * 52, 5)
)
write_input(series, file.path(out, "ff-series.csv"))
ref <- NULL
for (label in names(configs)) {
  for (name in names(series)) ref <- rbind(ref, run(label, name, series[[name]], configs[[label]]))
}
write.csv(ref, file.path(out, "ff-reference.csv"), row.names = FALSE, quote = FALSE)
