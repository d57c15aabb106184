; 16 panels of 352 (ss) x 384 (fs), tiled 8 rows x 2 columns in the slab, like an ePix10k2M whose frames
; arrive as (16, 352, 384): writer.geometry for such frames, and the geometry indexamajig reads the CXI
; files with. Panel i is frame channel i. Set clen, res and the corners for your detector.
photon_energy = /LCLS/photon_energy_eV
data = /entry_1/data_1/data
dim0 = %
dim1 = ss
dim2 = fs
peak_list = /entry_1/result_1
clen = 0.1
adu_per_photon = 1
res = 10000

p0/min_fs = 0
p0/max_fs = 383
p0/min_ss = 0
p0/max_ss = 351
p0/fs = +1.0x
p0/ss = +1.0y
p0/corner_x = -400
p0/corner_y = -1440

p1/min_fs = 384
p1/max_fs = 767
p1/min_ss = 0
p1/max_ss = 351
p1/fs = +1.0x
p1/ss = +1.0y
p1/corner_x = 0
p1/corner_y = -1440

p2/min_fs = 0
p2/max_fs = 383
p2/min_ss = 352
p2/max_ss = 703
p2/fs = +1.0x
p2/ss = +1.0y
p2/corner_x = -400
p2/corner_y = -1080

p3/min_fs = 384
p3/max_fs = 767
p3/min_ss = 352
p3/max_ss = 703
p3/fs = +1.0x
p3/ss = +1.0y
p3/corner_x = 0
p3/corner_y = -1080

p4/min_fs = 0
p4/max_fs = 383
p4/min_ss = 704
p4/max_ss = 1055
p4/fs = +1.0x
p4/ss = +1.0y
p4/corner_x = -400
p4/corner_y = -720

p5/min_fs = 384
p5/max_fs = 767
p5/min_ss = 704
p5/max_ss = 1055
p5/fs = +1.0x
p5/ss = +1.0y
p5/corner_x = 0
p5/corner_y = -720

p6/min_fs = 0
p6/max_fs = 383
p6/min_ss = 1056
p6/max_ss = 1407
p6/fs = +1.0x
p6/ss = +1.0y
p6/corner_x = -400
p6/corner_y = -360

p7/min_fs = 384
p7/max_fs = 767
p7/min_ss = 1056
p7/max_ss = 1407
p7/fs = +1.0x
p7/ss = +1.0y
p7/corner_x = 0
p7/corner_y = -360

p8/min_fs = 0
p8/max_fs = 383
p8/min_ss = 1408
p8/max_ss = 1759
p8/fs = +1.0x
p8/ss = +1.0y
p8/corner_x = -400
p8/corner_y = 0

p9/min_fs = 384
p9/max_fs = 767
p9/min_ss = 1408
p9/max_ss = 1759
p9/fs = +1.0x
p9/ss = +1.0y
p9/corner_x = 0
p9/corner_y = 0

p10/min_fs = 0
p10/max_fs = 383
p10/min_ss = 1760
p10/max_ss = 2111
p10/fs = +1.0x
p10/ss = +1.0y
p10/corner_x = -400
p10/corner_y = 360

p11/min_fs = 384
p11/max_fs = 767
p11/min_ss = 1760
p11/max_ss = 2111
p11/fs = +1.0x
p11/ss = +1.0y
p11/corner_x = 0
p11/corner_y = 360

p12/min_fs = 0
p12/max_fs = 383
p12/min_ss = 2112
p12/max_ss = 2463
p12/fs = +1.0x
p12/ss = +1.0y
p12/corner_x = -400
p12/corner_y = 720

p13/min_fs = 384
p13/max_fs = 767
p13/min_ss = 2112
p13/max_ss = 2463
p13/fs = +1.0x
p13/ss = +1.0y
p13/corner_x = 0
p13/corner_y = 720

p14/min_fs = 0
p14/max_fs = 383
p14/min_ss = 2464
p14/max_ss = 2815
p14/fs = +1.0x
p14/ss = +1.0y
p14/corner_x = -400
p14/corner_y = 1080

p15/min_fs = 384
p15/max_fs = 767
p15/min_ss = 2464
p15/max_ss = 2815
p15/fs = +1.0x
p15/ss = +1.0y
p15/corner_x = 0
p15/corner_y = 1080
