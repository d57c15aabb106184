; CrystFEL geometry for peaknet CXI files of 1 x 512 x 512 frames (peaknet-pipeline crystfel geom).
; Set clen (detector distance, m), res (pixels per metre) and the corners for your detector.
photon_energy = /LCLS/photon_energy_eV
data = /entry_1/data_1/data
dim0 = %
dim1 = ss
dim2 = fs
peak_list = /entry_1/result_1
clen = 0.1
res = 13333.3
adu_per_photon = 1

p0/min_fs = 0
p0/max_fs = 511
p0/min_ss = 0
p0/max_ss = 511
p0/corner_x = -256
p0/corner_y = -256
p0/fs = +1.0x
p0/ss = +1.0y
